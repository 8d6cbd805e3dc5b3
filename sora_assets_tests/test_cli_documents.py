"""Machine-readable output stays machine-readable: every --format json|csv command prints only its document.

Each command runs as a real subprocess (what a user pipes into `jq`), on a home the demo rendered, so HiGHS'
banner, progress bars, Dagster's and Great Expectations' chatter all get their chance to reach stdout."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sora_assets_tests.conftest import SAMPLE
from sora_assets_tests.test_end_to_end import cli, demo_home  # noqa: F401 - the rendered home fixture

pytestmark = pytest.mark.slow
NOW = "2026-11-21T14:00:00+00:00"


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
def pending_env(demo_home: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    """The demo home plus one submitted, unrendered batch, so `plan` has shards to solve with HiGHS."""
    env = demo_home["env"]
    batch = tmp_path_factory.mktemp("pending") / "tonight.jsonl"
    batch.write_text('{"prompt": "a paid shot of the sea", "tier": "paid", "steps": 3}\n'
                     '{"prompt": "a free shot of a hill", "steps": 3}\n')
    from sora_assets.core.home import Home
    from sora_assets.runner import open_instance, submit_file, tick_inbox

    home = Home.from_env(demo_home["home"])
    submit_file(home, batch)
    instance = open_instance(home)
    try:
        tick_inbox(home, instance)
    finally:
        instance.dispose()
    return env


def test_every_json_command_prints_one_document(demo_home: dict, pending_env: dict[str, str]) -> None:  # noqa: F811
    env = pending_env
    validated = json_document(cli("validate", str(SAMPLE), "--format", "json", env=env))
    assert validated["accepted"] == 11
    planned = json_document(cli("plan", "--now", NOW, "--format", "json", env=env))
    assert planned["shards"] >= 1 and planned["solver"] in ("highs", "greedy")
    reported = json_document(cli("report", "cost", "--format", "json", env=env))
    assert reported["reports"]
    only = json_document(cli("report", "cost", "--only", "cost_by_tier", "--format", "json", env=env))
    assert {r["tier"] for r in only["rows"]} == {"free", "paid"}
    status = json_document(cli("status", "--format", "json", env=env))
    assert "slo" in status and "plan" in status
    batch = demo_home["first"]["rows"][0]["partition_key"].rsplit("-s", 1)[0]
    night = json_document(cli("status", "--batch", batch, "--format", "json", env=env))
    assert night
    evaluated = json_document(cli("eval", "--suite", "safety", "--format", "json", env=env))
    assert evaluated["passed"] is True
    clip = next(Path(demo_home["home"], "store").glob("*/*.mp4"))
    verified = json_document(cli("verify", str(clip), "--format", "json", env=env))
    assert verified["state"] == "Trusted"


def test_backfill_without_a_webserver_prints_nothing_on_stdout(pending_env: dict[str, str]) -> None:
    result = cli("backfill", "--failed", "--url", "http://127.0.0.1:9", "--format", "json", env=pending_env)
    assert result.returncode != 0
    assert result.stdout == "" and result.stderr.startswith("error:")


def test_every_csv_command_prints_one_table(pending_env: dict[str, str]) -> None:
    env = pending_env
    assert len(csv_rows(cli("validate", str(SAMPLE), "--format", "csv", env=env))) == 13
    assert csv_rows(cli("plan", "--now", NOW, "--format", "csv", env=env))
    assert csv_rows(cli("report", "cost", "--only", "cost_by_tier", "--format", "csv", env=env))
    assert csv_rows(cli("eval", "--suite", "safety", "--format", "csv", env=env))


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
