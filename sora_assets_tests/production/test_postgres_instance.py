"""The production instance profile: a real shard runs with run, event and schedule storage on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_assets.core.storage.home import Home
from sora_assets_tests.production.services import postgres_dagster_home, postgres_env, query, scratch_database

pytestmark = pytest.mark.slow
ONE_PROMPT = '{"prompt": "a paper boat on a pond", "steps": 3}\n'


def test_a_shard_runs_on_the_postgres_profile(home_with_model: Home, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from sora_assets.services.runner import run_shards, submit_file, tick_inbox

    with scratch_database() as db_name:
        for name, value in postgres_env(db_name).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(postgres_dagster_home(tmp_path / "dagster_home")))
        batch = tmp_path / "boats.jsonl"
        batch.write_text(ONE_PROMPT)
        submit_file(home_with_model, batch)
        with DagsterInstance.get() as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            keys = tick_inbox(home_with_model, instance).new_keys
            assert len(keys) == 1
            outcomes = run_shards(home_with_model, instance, keys)
            assert [o.success for o in outcomes] == [True], outcomes

        # what the run wrote is in PostgreSQL, readable by a fresh instance (another process would see the same)
        runs = query(db_name, "SELECT status FROM runs")
        assert runs == [(DagsterRunStatus.SUCCESS.value,)]
        materialized = query(db_name, "SELECT DISTINCT asset_key FROM event_logs WHERE "
                                      "dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = %s", (keys[0],))
        assert {row[0] for row in materialized} >= {AssetKey("rendered_clips").to_string(),
                                                      AssetKey("published_clips").to_string()}
        assert query(db_name, "SELECT partition FROM dynamic_partitions") == [(keys[0],)]
        with DagsterInstance.get() as reopened:
            event = reopened.get_latest_materialization_event(AssetKey("published_clips"))
            assert event is not None and event.asset_materialization.partition == keys[0]
            assert event.asset_materialization.metadata["published"].value == 1
