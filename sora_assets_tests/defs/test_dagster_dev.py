"""`dagster dev -w workspace.yaml` serves the asset graph: started for real, asked over GraphQL, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sora_assets_tests.defs.test_definitions import DESIGN_ASSETS, DESIGN_GROUPS
from sora_assets_tests.processes import stop_process_group

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }"
# a drill's clock: run monitoring every 2 s and a dead run's slots freed 3 s after it ended, instead of the
# shipped 15 s and 30 s (test_run_monitoring.py checks those), so a kill drill waits seconds, not a minute
DRILL_MONITORING = {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 3}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running_dagster_dev(tmp_path: Path, env: dict[str, str], dagster_home: Path | None = None,
                        monitoring: dict[str, int] | None = DRILL_MONITORING,
                        ) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """`dagster dev` on 127.0.0.1 with a temporary DAGSTER_HOME (or `dagster_home`, e.g. one a demo already ran
    in, so the UI shows its materialisations) holding the repo's dagster.yaml with `monitoring` (None: as
    shipped) in its run_monitoring; it imports this checkout; stopped by its process group's PID."""
    import yaml

    port = free_port()
    dagster_home = dagster_home or tmp_path / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    profile = (REPO / "dagster.yaml").read_text()
    if monitoring:
        config = yaml.safe_load(profile)
        config["run_monitoring"].update(monitoring)
        profile = yaml.safe_dump(config)
    (dagster_home / "dagster.yaml").write_text(profile)
    log_path = tmp_path / "dagster_dev.log"
    log = log_path.open("w")  # noqa: SIM115 - outlives the Popen; closed in finally
    pythonpath = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    process = subprocess.Popen(["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                               cwd=REPO, env={**env, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": pythonpath},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, port, dagster_home
    finally:
        stop_process_group(process, grace_s=30)
        log.close()


def wait_for_asset_nodes(process: subprocess.Popen, port: int, log_path: Path, timeout: float = 150) -> list[dict]:
    """Poll GraphQL until the webserver serves the asset graph (or the server dies, or the deadline passes)."""
    deadline = time.monotonic() + timeout
    nodes = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            nodes = graphql(port, QUERY)["data"]["assetNodes"]
            if nodes:
                break
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)  # paces the readiness poll; returns at once if the server died
    assert nodes, log_path.read_text()[-3000:]
    return nodes


def test_dagster_dev_shows_the_asset_graph(tmp_path: Path) -> None:
    env = {**os.environ, "SORA_ASSETS_HOME": str(tmp_path / "home")}
    with running_dagster_dev(tmp_path, env) as (process, port, _):
        nodes = wait_for_asset_nodes(process, port, tmp_path / "dagster_dev.log")
        keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {name: n["groupName"] for name, n in keys.items()} == DESIGN_GROUPS
        assert set(keys) == set(DESIGN_ASSETS) | {"render_plan", "golden_eval", "slo_snapshots", "batch_progress"}
        assert ["validated_prompts"] in [d["path"] for d in keys["render_plan"]["dependencyKeys"]]
        for upstream, downstream in zip(DESIGN_ASSETS, DESIGN_ASSETS[1:], strict=False):
            assert [upstream] in [d["path"] for d in keys[downstream]["dependencyKeys"]]
