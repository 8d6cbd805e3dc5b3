"""Issue 19: the chaos matrix. For each stage boundary and each way a step can die (SIGKILL of the process
running the shard, or an exception raised in the step), a shard runs in a child process armed with a failpoint,
then is run again (as `backfill --failed` would) until it finishes. After every cell the invariants hold:

- every accepted clip is published or quarantined exactly once (store objects = published clips);
- one ledger row per clip, each with the GPU time its render took (the blocked clip's too), equal to the sum
  of every render attempt's spend record (`render_attempts`: a killed attempt's steps after its last
  checkpoint are billed too);
- no `gpu` pool slot is held by a finished run;
- a resumed render re-ran less than one checkpoint interval (it resumed from the last checkpoint);
- the frames are bit-identical to a clean home's.

The whole matrix is marked `chaos` (deselected by default: `python -m pytest -m chaos
sora_assets_tests/test_chaos_matrix.py` runs it); one cell runs by default. Each cell prints a
`CHAOS|stage|victim|outcome|re-spent GPU s|recover s` line: docs/OPERATIONS.md has the table.

Here the shard runs in one process (the in-process executor), so the killed process is both the step worker
and the run coordinator; the coordinator of a multiprocess run, killed alone, is covered with real `dagster dev`
processes in test_coordinator_kill_e2e.py, and every process at once in test_power_loss_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sora_assets.core.render.failpoints import ENV_VAR
from sora_assets.core.storage.home import Home
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.warehouse import ParquetWarehouse

pytestmark = pytest.mark.slow

ROWS = [
    {"prompt": "a red fox running through a forest", "tier": "paid", "steps": 20, "seed": 5},
    {"prompt": "slow motion waves crashing on rocks", "tier": "paid", "steps": 20, "seed": 6},
]
CHECKPOINT_EVERY = 5
DRIVER = """
import json, sys
from sora_assets.core.storage.home import Home
from sora_assets.services.runner import open_instance, run_shards, tick_inbox
from sora_assets_tests.test_chaos_matrix import BlockTheFox
home = Home.from_env(sys.argv[1])
instance = open_instance(home)
tick_inbox(home, instance)
keys = sorted(instance.get_dynamic_partitions("shards"))
overrides = {"frame_safety": BlockTheFox()} if sys.argv[2] == "block" else {}
print(json.dumps([o.success for o in run_shards(home, instance, keys, resource_overrides=overrides)]))
"""
STAGES = {  # stage boundary -> (failpoint site, the fox is blocked by the frame scan)
    "intake": ("intake.before_register", False),
    "validation": ("validate.before", False),
    "render mid-step": ("generate.after_step=7", False),
    "after render, before scan": ("scan.before", False),
    "scan with a blocked clip": ("sign.before", True),  # dies after the scan quarantined the fox
    "sign": ("sign.before", False),
    "publish, before rename": ("publish.before_rename", False),
    "publish, after rename, before ledger": ("publish.before_ledger", False),
}
# the default run's cell; a render killed mid-step is also in the default run as test_generation's in-process
# kill and test_backfill_e2e's multiprocess one (each resumed bit-identically from its checkpoint)
FAST = {("scan with a blocked clip", "kill")}
CELLS = [pytest.param(stage, victim, id=f"{stage}-{victim}",
                      marks=() if (stage, victim) in FAST else (pytest.mark.chaos,))
         for stage in STAGES for victim in ("kill", "raise")
         if not (stage == "intake" and victim == "raise")]  # a raise at intake quarantines the file: not a crash


class BlockTheFox(FrameSafetyResource):
    """The frame scan's verdict for the drill: the fox clip is blocked, the waves pass."""

    def scan(self, frames, non_finite=None, prompt=""):
        verdict = super().scan(frames, non_finite, prompt)
        if "fox" in prompt:
            verdict.verdict, verdict.reasons = "block", ["test:chaos-block"]
        return verdict


def drive(home: Home, block: bool, failpoint: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SORA_ASSETS_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY)}
    if failpoint:
        env[ENV_VAR] = failpoint
    return subprocess.run([sys.executable, "-c", DRIVER, str(home.root), "block" if block else "pass"], env=env,
                          capture_output=True, text=True, timeout=400)


def fresh(root: Path, model: Path) -> Home:
    home = Home.from_env(root).ensure()
    shutil.copytree(model, home.default_model_path)
    (home.inbox / "night.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return home


def warehouse(home: Home) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    home = fresh(tmp_path_factory.mktemp("clean") / "home", tiny_model_dir)
    result = drive(home, False, None)
    assert result.returncode == 0 and json.loads(result.stdout.splitlines()[-1]) == [True], result.stderr[-3000:]
    clips = warehouse(home).query("SELECT row, frames_sha256, gpu_seconds FROM clips")
    return {"frames": dict(zip(clips.row, clips.frames_sha256, strict=True)), "gpu": float(clips.gpu_seconds.sum())}


@pytest.mark.parametrize(("stage", "victim"), CELLS)
def test_chaos_cell(stage: str, victim: str, tmp_path: Path, tiny_model_dir: Path, clean: dict) -> None:
    site, block = STAGES[stage]
    home = fresh(tmp_path / "home", tiny_model_dir)
    first = drive(home, block, f"{site}:{victim}")
    if victim == "kill":
        assert first.returncode == -9, first.stderr[-3000:]  # died at the failpoint
    else:
        assert first.returncode == 0, first.stderr[-3000:]
    assert any(home.failpoints.iterdir())  # it fired
    started = time.monotonic()
    attempts = 0
    while not list((home.warehouse / "cost_ledger").glob("partition=*/published_clips.parquet")):
        attempts += 1
        assert attempts <= 3, "the shard did not finish within three reruns"
        rerun = drive(home, block, f"{site}:{victim}")  # the marker keeps the failpoint from firing again
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    recover_s = time.monotonic() - started
    outcome = "finished in the first run (step retry)" if attempts == 0 else f"finished after {attempts} rerun(s)"

    w = warehouse(home)
    clips = w.query("SELECT row, status, frames_sha256, resumed_from_step, gpu_seconds FROM clips ORDER BY row")
    assert list(clips.row) == [1, 2]
    expected = ["blocked", "published"] if block else ["published", "published"]
    assert list(clips.status) == expected
    assert len(list(home.store.glob("*/*.mp4"))) == expected.count("published")  # published exactly once
    assert len(list(home.quarantine.glob("*/*.mp4"))) == expected.count("blocked")
    assert dict(zip(clips.row, clips.frames_sha256, strict=True)) == clean["frames"]  # bit-identical
    assert set(clips.resumed_from_step) <= {0, CHECKPOINT_EVERY}  # re-ran less than one checkpoint interval
    ledger = w.query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    assert len(ledger) == 2 and ledger.clip_id.is_unique and (ledger.gpu_seconds > 0).all()
    # no lost spend: each clip's ledger GPU-seconds = the sum of every render attempt's record, the killed
    # attempt's steps after its last checkpoint included
    attempts = w.query("SELECT clip_id, steps_done, finished, gpu_seconds FROM render_attempts")
    spent = attempts.groupby("clip_id").gpu_seconds.sum().to_dict()
    assert {c: pytest.approx(g, rel=1e-9) for c, g in zip(ledger.clip_id, ledger.gpu_seconds, strict=True)} == spent
    if stage == "render mid-step":
        assert ((attempts.steps_done == 7) & ~attempts.finished).sum() == 1  # the attempt that died after step 7
        assert len(attempts) == 3  # that attempt, its resume, the other clip's render
    from sora_assets.services.runner import open_instance

    with open_instance(home) as instance:
        assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
    respent = float(ledger.gpu_seconds.sum()) - clean["gpu"]
    print(f"\nCHAOS|{stage}|{victim}|{outcome}|{respent:+.3f}|{recover_s:.1f}")
