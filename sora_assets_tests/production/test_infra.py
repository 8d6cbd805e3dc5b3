"""Every file in infra/ parses and has what its consumer needs; compose is validated against a schema."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

# the parts of the compose specification this stack relies on (the official schema is not shipped offline)
COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
                "properties": {
                    "image": {"type": "string"},
                    "command": {"type": "array", "items": {"type": "string"}},
                    "environment": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                    "ports": {"type": "array", "items": {"type": "string"}},
                    "volumes": {"type": "array", "items": {"type": "string"}},
                    "depends_on": {"type": "object"},
                    "healthcheck": {"type": "object", "required": ["test"]},
                    "deploy": {"type": "object"},
                },
            },
        },
        "volumes": {"type": "object"},
    },
}


def load(name: str) -> dict:
    return yaml.safe_load((INFRA / name).read_text())


@pytest.mark.parametrize("path", sorted(p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*.yaml")))
def test_every_yaml_parses_to_a_mapping(path: str) -> None:
    assert isinstance(load(path), dict)


def test_compose_runs_the_whole_stack_and_validates() -> None:
    compose = load("docker-compose.yaml")
    jsonschema.validate(compose, COMPOSE_SCHEMA)
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "code-server", "webserver", "daemon", "gpu-worker"}
    gpu = services["gpu-worker"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["command"][gpu["command"].index("-q") + 1] == gpu["environment"]["SORA_ASSETS_CELERY_GPU_QUEUE"]
    for name in ("code-server", "webserver", "daemon", "cpu-worker", "gpu-worker"):
        env = services[name]["environment"]
        assert env["DAGSTER_PG_HOST"] == "postgres" and env["SORA_ASSETS_EXECUTOR"] == "celery"
        assert "PASSWORD" not in "".join(k for k, v in env.items() if v and "${" not in str(v))  # no literal secrets
    assert services["webserver"]["ports"] == ["3000:3000"]


def test_celery_worker_config_matches_what_the_executor_builds() -> None:
    from sora_assets.executors import celery_settings_from_env

    expected = celery_settings_from_env({"SORA_ASSETS_CELERY_BROKER": "redis://redis:6379/0"})
    assert load("celery.yaml")["execution"]["config"] == expected


def test_postgres_profile_reads_its_connection_from_the_environment(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((INFRA / "dagster-postgres.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema validation
    assert "postgres" in config["storage"]
    profile = load("dagster-postgres.yaml")
    db = profile["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert {db[k]["env"] for k in ("username", "hostname", "db_name", "port")} == {
        "DAGSTER_PG_USERNAME", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"}
    assert "password" not in db and profile["telemetry"]["enabled"] is False


def test_helm_values_put_runs_on_the_gpu_pool_with_secrets() -> None:
    values = load("helm/values.yaml")
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "sora_assets.definitions"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    resources = launcher["runK8sConfig"]["containerConfig"]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    pod = launcher["runK8sConfig"]["podSpecConfig"]
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "sora-assets-s3"} in launcher["envSecrets"]
    assert {"name": "sora-assets-s3"} in deployment["envSecrets"]
    for holder in (launcher, deployment):
        assert any(v.get("secret", {}).get("secretName") == "sora-assets-signing-keys" for v in holder["volumes"])
        assert {"name": "signing-keys", "mountPath": "/data/keys", "readOnly": True} in holder["volumeMounts"]
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["global"]["postgresqlSecretName"]


def test_dockerfile_builds_the_code_location_with_a_cuda_switch() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert 'pip install --index-url "${TORCH_INDEX_URL}"' in text
    assert "RUN pip install --no-deps --require-hashes -r requirements.lock" in text  # the tested versions
    assert "COPY infra/dagster-postgres.yaml ${DAGSTER_HOME}/dagster.yaml" in text
    assert re.search(r'^CMD \["dagster", "code-server", "start".*"sora_assets.definitions"\]$', text, re.M)
    assert re.search(r"^USER (?!root)", text, re.M)
