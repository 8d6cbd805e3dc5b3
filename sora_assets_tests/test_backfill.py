import subprocess

from sora_assets.services.backfill import ShardStatus, failed_shards
from sora_assets_tests.defs.test_dagster_dev import free_port


def test_failed_shards_skip_running_ones_and_filter_by_batch() -> None:
    status = ShardStatus(failed={"a-1111111111-s000", "a-1111111111-s001", "b-2222222222-s000"},
                         in_progress={"a-1111111111-s001"})
    assert failed_shards(status) == ["a-1111111111-s000", "b-2222222222-s000"]
    assert failed_shards(status, batch="b-2222222222") == ["b-2222222222-s000"]
    assert failed_shards(status, batch="a-11") == []  # a batch id is matched whole, not as a prefix


def test_backfill_without_a_webserver_fails_with_one_line(cli_env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(["sora-assets", "backfill", "--failed", "--url", url], capture_output=True, text=True,
                          env=cli_env, timeout=60)
    assert done.returncode == 2
    assert "cannot reach the Dagster webserver" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_backfill_needs_to_be_told_what_to_backfill(cli_env: dict[str, str]) -> None:
    done = subprocess.run(["sora-assets", "backfill"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert done.returncode == 2 and "--failed" in done.stderr
