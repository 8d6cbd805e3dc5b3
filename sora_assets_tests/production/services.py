"""Test helpers for the production profile: a throwaway PostgreSQL database and a DAGSTER_HOME using it."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_PROFILE = REPO / "infra" / "dagster-postgres.yaml"


@contextlib.contextmanager
def scratch_database(prefix: str = "sora_assets_test") -> Iterator[str]:
    """A uniquely named database on the local PostgreSQL, dropped (connections and all) afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def postgres_env(db_name: str) -> dict[str, str]:
    """The variables infra/dagster-postgres.yaml reads."""
    return {"DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432",
            "DAGSTER_PG_DB": db_name}


def postgres_dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is the production profile, exactly as shipped."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(POSTGRES_PROFILE, folder / "dagster.yaml")
    return folder


def query(db_name: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    with contextlib.closing(psycopg2.connect(f"postgresql://postgres@127.0.0.1:5432/{db_name}")) as connection, \
            connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
