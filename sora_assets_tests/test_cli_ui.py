"""`sora-assets ui` stopped with SIGTERM leaves no webserver, daemon or code server behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sora_assets_tests.defs.test_dagster_dev import REPO, free_port, wait_for_asset_nodes

pytestmark = pytest.mark.slow


def test_sigterm_to_ui_stops_its_whole_dagster_dev_tree(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "ui.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with log_path.open("w") as log:
        ui = subprocess.Popen([sys.executable, "-m", "sora_assets.cli", "ui", "--home", str(tmp_path / "home"),
                               "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
        tree: list[psutil.Process] = []
        try:
            wait_for_asset_nodes(ui, port, log_path)
            tree = psutil.Process(ui.pid).children(recursive=True)
            names = " ".join(" ".join(p.cmdline()) for p in tree)
            assert "dagster" in names and len(tree) >= 3, names  # dagster dev + webserver + daemon + code server
            ui.send_signal(signal.SIGTERM)
            assert ui.wait(timeout=90) == 128 + signal.SIGTERM
            _, alive = psutil.wait_procs(tree, timeout=30)
            assert alive == [], [" ".join(p.cmdline()) for p in alive]
        finally:
            for process in [*tree, psutil.Process(ui.pid) if ui.poll() is None else None]:
                if process is not None:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
            ui.wait(timeout=30)
