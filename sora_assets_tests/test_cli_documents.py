"""Machine-readable output stays machine-readable: every --format json|csv command prints only its document.

Each command runs as a real subprocess (what a user pipes into `jq`), on a home with a registered batch, so
HiGHS' banner, progress bars, Dagster's and Great Expectations' chatter all get their chance to reach stdout."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sora_assets.core.intake.batch_files import batch_id_for
from sora_assets.core.render.video_io import encode_mp4
from sora_assets_tests.conftest import SAMPLE, gradient_clip
from sora_assets_tests.test_end_to_end import cli

pytestmark = pytest.mark.slow
NOW = "2026-11-21T14:00:00+00:00"
BATCH_TEXT = ('{"prompt": "a paid shot of the sea", "tier": "paid", "steps": 3}\n'
              '{"prompt": "a free shot of a hill", "steps": 3}\n')


def json_document(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # raises on anything but exactly one JSON document


def csv_rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    header = result.stdout.splitlines()[0].split(",")
    assert all(None not in row and len(row) == len(header) for row in rows), result.stdout[:2000]
    return rows


@pytest.fixture(scope="module")
def pending_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A home with one registered, unrendered batch: `plan` has shards to solve with HiGHS, `status --batch` a
    batch to describe, and every table exists (empty) for `report`."""
    from sora_assets.core.storage.home import Home
    from sora_assets.services.runner import open_instance, submit_file, tick_inbox

    root = tmp_path_factory.mktemp("documents")
    env = {**os.environ, "SORA_ASSETS_HOME": str(root / "home")}
    batch = root / "tonight.jsonl"
    batch.write_text(BATCH_TEXT)
    home = Home.from_env(root / "home").ensure()
    submit_file(home, batch)
    instance = open_instance(home)
    try:
        tick_inbox(home, instance)
    finally:
        instance.dispose()
    env["BATCH_ID"] = batch_id_for(batch.name, batch.read_bytes())
    return env


def test_every_json_command_prints_one_document(pending_env: dict[str, str], tmp_path: Path) -> None:
    env = pending_env
    validated = json_document(cli("validate", str(SAMPLE), "--format", "json", env=env))
    assert validated["accepted"] == 11
    planned = json_document(cli("plan", "--now", NOW, "--format", "json", env=env))
    assert planned["shards"] == 2 and planned["solver"] in ("highs", "greedy")
    reported = json_document(cli("report", "cost", "--format", "json", env=env))
    assert reported["reports"]
    only = json_document(cli("report", "cost", "--only", "cost_by_tier", "--format", "json", env=env))
    assert only["rows"] == []  # nothing rendered yet: an empty table, still one document
    status = json_document(cli("status", "--format", "json", env=env))
    assert "slo" in status and "plan" in status
    night = json_document(cli("status", "--batch", env["BATCH_ID"], "--format", "json", env=env))
    assert night
    evaluated = json_document(cli("eval", "--suite", "safety", "--format", "json", env=env))
    assert evaluated["passed"] is True
    unsigned = tmp_path / "unsigned.mp4"
    unsigned.write_bytes(encode_mp4(gradient_clip(), fps=8))
    verified = cli("verify", str(unsigned), "--format", "json", env=env)
    assert verified.returncode == 1 and json.loads(verified.stdout)["state"] != "Trusted"


def test_backfill_without_a_webserver_prints_nothing_on_stdout(pending_env: dict[str, str]) -> None:
    result = cli("backfill", "--failed", "--url", "http://127.0.0.1:9", "--format", "json", env=pending_env)
    assert result.returncode != 0
    assert result.stdout == "" and result.stderr.startswith("error:")


def test_every_csv_command_prints_one_table(pending_env: dict[str, str]) -> None:
    env = pending_env
    assert len(csv_rows(cli("validate", str(SAMPLE), "--format", "csv", env=env))) == 13
    assert len(csv_rows(cli("plan", "--now", NOW, "--format", "csv", env=env))) == 2
    # the golden gates only (nothing rendered): the corpus figures' JSON path is the json test's
    assert csv_rows(cli("eval", "--suite", "all", "--format", "csv", env=env))


def test_chatter_written_to_fd1_by_a_native_library_lands_on_stderr(tmp_path: Path) -> None:
    """The guard itself: C-level writes to fd 1 (as HiGHS' banner is) during a json command go to stderr."""
    script = ("import os, sys; sys.argv = ['sora-assets', 'x', '--format', 'json']\n"
              "from sora_assets import cli\n"
              "cli._guard_stdout(); os.write(1, b'banner from C\\n'); print('python chatter')\n"
              "cli.document('{\"ok\": true}')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True}
    assert "banner from C" in result.stderr and "python chatter" in result.stderr
