"""rendered_clips through Dagster: exact resume after a real SIGKILL, step retries, NaN dead letters,
tier budgets, and no clip published twice."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from sora_assets.core.intake.batch_files import batch_id_for
from sora_assets.core.render.failpoints import ENV_VAR
from sora_assets.core.storage.home import Home
from sora_assets.resources.video_model import VideoModelResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.services.runner import batch_shard_keys, open_instance, run_shards, submit_file, tick_inbox

pytestmark = pytest.mark.slow

ROWS = [
    {"prompt": "a red fox running through a forest", "tier": "paid", "steps": 20, "seed": 5},
    {"prompt": "slow motion waves crashing on rocks", "tier": "paid", "steps": 20, "seed": 6},
]
RUN_IN_SUBPROCESS = """
import sys
from sora_assets.core.storage.home import Home
from sora_assets.services.runner import open_instance, run_shards
home = Home.from_env(sys.argv[1])
run_shards(home, open_instance(home), sys.argv[2:])
print("finished")
"""


def submit(home: Home, rows: list[dict], name: str = "batch.jsonl") -> tuple[DagsterInstance, list[str]]:
    path = home.root.parent / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    submit_file(home, path)
    instance = open_instance(home)
    tick_inbox(home, instance)
    return instance, batch_shard_keys(home, batch_id_for(path.name, path.read_bytes()))


def killed_run(home: Home, keys: list[str], failpoint: str) -> None:
    """Run the shards in a child process that the failpoint SIGKILLs, as a lost worker would die."""
    env = {**os.environ, ENV_VAR: failpoint}
    killed = subprocess.run([sys.executable, "-c", RUN_IN_SUBPROCESS, str(home.root), *keys], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert "finished" not in killed.stdout


def warehouse(home: Home) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))


def render_metadata(instance: DagsterInstance, key: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey("rendered_clips"))
    assert event.asset_materialization.partition == key
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def step_events(instance: DagsterInstance, kind: DagsterEventType) -> int:
    return sum(len([e for e in instance.all_logs(run.run_id, of_type=kind) if e.step_key == "rendered_clips"])
               for run in instance.get_runs())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[int, str]:
    """frames_sha256 per row from an uninterrupted run in a clean home."""
    home = Home.from_env(tmp_path_factory.mktemp("reference") / "home").ensure()
    shutil.copytree(tiny_model_dir, home.default_model_path)
    instance, keys = submit(home, ROWS)
    assert all(o.success for o in run_shards(home, instance, keys))
    clips = warehouse(home).query("SELECT row, frames_sha256 FROM clips")
    return dict(zip(clips.row, clips.frames_sha256, strict=True))


def test_a_shard_killed_mid_denoise_resumes_from_its_checkpoint_bit_identically(
        home_with_model: Home, reference: dict[int, str]) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    killed_run(home, keys, "generate.after_step=13:kill")
    first_clip = sorted((home.checkpoints / keys[0]).iterdir())[0]
    assert [p.name for p in sorted(first_clip.glob("*.json"))] == ["step-00010.json"]

    assert all(o.success for o in run_shards(home, instance, keys))
    meta = render_metadata(instance, keys[0])
    assert meta["resumed"] == 1 and meta["steps_saved_by_resume"] == 10 and meta["rendered"] == 2
    clips = warehouse(home).query("SELECT row, frames_sha256, resumed_from_step, status, steps FROM clips")
    assert dict(zip(clips.row, clips.frames_sha256, strict=True)) == reference
    assert sorted(clips.resumed_from_step) == [0, 10] and set(clips.status) == {"published"}
    assert not (home.checkpoints / keys[0]).exists()  # removed once published
    # no lost spend: each clip's ledger GPU-seconds = the sum of its render attempts' records, the killed
    # attempt's steps after its last checkpoint included; and the killed run holds no gpu slot
    ledger = warehouse(home).query("SELECT clip_id, gpu_seconds FROM cost_ledger")
    attempts = warehouse(home).query("SELECT clip_id, steps_done, finished, gpu_seconds FROM render_attempts")
    assert ((attempts.steps_done == 13) & ~attempts.finished).sum() == 1 and len(attempts) == 3
    spent = attempts.groupby("clip_id").gpu_seconds.sum().to_dict()
    assert {c: pytest.approx(g, rel=1e-9) for c, g in zip(ledger.clip_id, ledger.gpu_seconds, strict=True)} == spent
    assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots


def test_a_raised_step_is_retried_by_dagster_and_resumes_in_the_same_run(
        home_with_model: Home, reference: dict[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    monkeypatch.setenv(ENV_VAR, "generate.after_step=12:raise")
    outcomes = run_shards(home, instance, keys)
    assert all(o.success for o in outcomes)
    assert step_events(instance, DagsterEventType.STEP_UP_FOR_RETRY) == 1
    meta = render_metadata(instance, keys[0])
    assert meta["resumed"] == 1 and meta["steps_saved_by_resume"] == 10
    clips = warehouse(home).query("SELECT row, frames_sha256 FROM clips")
    assert dict(zip(clips.row, clips.frames_sha256, strict=True)) == reference
    ledger = warehouse(home).query("SELECT gpu_seconds, steps FROM cost_ledger")
    assert len(ledger) == 2 and (ledger.gpu_seconds > 0).all() and set(ledger.steps) == {20}
    failures = warehouse(home).query("SELECT partition_key, retry_number, worker, retryable FROM render_failures")
    assert len(failures) == 1 and failures.retry_number[0] == 0 and failures.retryable[0]  # the failed attempt
    assert failures.worker[0].endswith("/cpu") and failures.partition_key[0] == keys[0]



def test_nan_latents_dead_letter_the_clip_without_retries_and_are_not_rendered_again(
        home: Home, poisoned_model_dir: Path) -> None:
    instance, keys = submit(home, ROWS)
    poisoned = {"video_model": VideoModelResource(model_path=str(poisoned_model_dir))}
    assert all(o.success for o in run_shards(home, instance, keys, resource_overrides=poisoned))
    assert step_events(instance, DagsterEventType.STEP_UP_FOR_RETRY) == 0
    meta = render_metadata(instance, keys[0])
    assert meta["dead_letters"] == 2 and meta["rendered"] == 0
    store = warehouse(home)
    letters = store.query("SELECT clip_id, step, reason, retryable, spec_json, gpu_seconds FROM dead_letters "
                          "ORDER BY clip_id")
    assert list(letters.step) == [1, 1] and set(letters.reason) == {"non_finite_latents"}
    assert not letters.retryable.any() and (letters.gpu_seconds > 0).all()
    assert json.loads(letters.spec_json[0])["seed"] == 5
    events = store.query("SELECT action FROM safety_events WHERE stage = 'generation'")
    assert list(events.action) == ["dead_letter", "dead_letter"]
    clips = store.query("SELECT status, sha256 FROM clips")
    assert set(clips.status) == {"dead_letter"} and clips.sha256.isna().all()
    ledger_before = store.query("SELECT clip_id, gpu_seconds, cache_hit FROM cost_ledger ORDER BY clip_id")
    assert len(ledger_before) == 2 and (ledger_before.gpu_seconds > 0).all()  # the burnt GPU time is billed
    assert not list(home.store.glob("*/*.mp4"))

    assert all(o.success for o in run_shards(home, instance, keys, resource_overrides=poisoned))
    again = render_metadata(instance, keys[0])
    assert again["dead_letters"] == 2 and again["gpu_seconds"] == 0  # not rendered a second time
    assert store.query("SELECT clip_id, gpu_seconds, cache_hit FROM cost_ledger ORDER BY clip_id").equals(
        ledger_before)
    assert len(store.query("SELECT * FROM dead_letters")) == 2


def test_tier_step_budgets_are_enforced_and_recorded(home_with_model: Home, tiny_clip_dir: Path) -> None:
    from sora_assets.resources.alignment import ClipAlignmentResource

    home = home_with_model
    instance, keys = submit(home, [{"prompt": "a cat walking on a beach at sunset", "tier": "free", "steps": 80},
                                   {"prompt": "a chef cooking in a busy kitchen", "tier": "paid", "steps": 80}])
    with_clip = {"alignment": ClipAlignmentResource(model_path=str(tiny_clip_dir))}
    assert all(o.success for o in run_shards(home, instance, keys, resource_overrides=with_clip))
    store = warehouse(home)
    clips = store.query("SELECT tier, steps, warnings FROM clips ORDER BY tier")
    assert list(clips.steps) == [30, 50]
    assert all("steps" in w for w in clips.warnings)
    ledger = store.query("SELECT tier, steps, storage_usd FROM cost_ledger ORDER BY tier")
    assert list(ledger.steps) == [30, 50]
    assert (ledger.storage_usd > 0).all()  # each stored render pays its storage
    quality = store.query("SELECT * FROM quality_metrics")
    assert len(quality) == 2 and set(quality.num_frames) == {9}  # measured on every rendered clip
    assert quality[["flicker", "motion", "sharpness", "exposure"]].notna().all().all()
    assert ((quality.exposure > 0) & (quality.exposure < 1)).all()
    assert quality.clip_score.between(0, 100).all()  # the optional CLIP score, from a local folder
    sheet = home.previews / f"{keys[0]}.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    event = instance.get_latest_materialization_event(AssetKey("screened_clips"))
    assert "data:image/png;base64," in event.asset_materialization.metadata["contact_sheet"].value
    published = instance.get_latest_materialization_event(AssetKey("published_clips")).asset_materialization
    table = published.metadata["clips_table"].value.splitlines()
    assert len(table) == 3 and "| published |" in table[2] and "| Trusted |" in table[2]  # one clip per tier shard


def test_a_kill_while_publishing_never_publishes_a_clip_twice_nor_renders_it_again(home_with_model: Home) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    killed_run(home, keys, "publish.before_rename:kill")
    assert not list(home.store.glob("*/*.mp4"))

    assert all(o.success for o in run_shards(home, instance, keys))
    meta = render_metadata(instance, keys[0])
    assert meta["reused_from_earlier_attempt"] == 2 and meta["rendered"] == 2
    assert len(list(home.store.glob("*/*.mp4"))) == 2 and len(list(home.store.glob("cache/*/*.json"))) == 2
    store = warehouse(home)
    assert len(store.query("SELECT * FROM clips")) == 2
    ledger = store.query("SELECT gpu_seconds FROM cost_ledger")
    assert len(ledger) == 2 and (ledger.gpu_seconds > 0).all()  # the first attempt's GPU time, once

    assert all(o.success for o in run_shards(home, instance, keys))  # and once more: all cache hits
    assert len(list(home.store.glob("*/*.mp4"))) == 2
    assert render_metadata(instance, keys[0])["cache_hits"] == 2


def test_out_of_memory_in_a_batch_renders_the_clips_one_by_one_without_a_retry(
        home_with_model: Home, reference: dict[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    monkeypatch.setenv(ENV_VAR, "generate.after_step=3:oom")
    batched = {"video_model": VideoModelResource(model_path=str(home.default_model_path), batch_size=2)}
    assert all(o.success for o in run_shards(home, instance, keys, resource_overrides=batched))
    assert step_events(instance, DagsterEventType.STEP_UP_FOR_RETRY) == 0
    meta = render_metadata(instance, keys[0])
    assert meta["rendered"] == 2 and meta["dead_letters"] == 0
    clips = warehouse(home).query("SELECT row, frames_sha256 FROM clips")
    assert dict(zip(clips.row, clips.frames_sha256, strict=True)) == reference  # singles: exactly unbatched


def test_a_broken_model_fails_at_once_with_retryable_dead_letters_and_renders_once_fixed(
        home_with_model: Home, tiny_model_dir: Path) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    shard = sorted((home.default_model_path / "transformer").glob("*.safetensors"))[0]
    intact = shard.read_bytes()
    shard.write_bytes(intact[:100])
    outcomes = run_shards(home, instance, keys)
    assert not outcomes[0].success and "model_unavailable" in outcomes[0].error
    assert step_events(instance, DagsterEventType.STEP_UP_FOR_RETRY) == 0  # permanent: not retried
    letters = warehouse(home).query("SELECT reason, retryable, spec_json FROM dead_letters")
    assert len(letters) == 2 and letters.retryable.all()
    assert all(r.startswith("model_unavailable: ") for r in letters.reason)

    shard.write_bytes(intact)  # the operator restores the weights and re-runs the shard
    assert all(o.success for o in run_shards(home, instance, keys))
    store = warehouse(home)
    assert len(store.query("SELECT * FROM dead_letters")) == 0
    assert set(store.query("SELECT status FROM clips").status) == {"published"}


def test_a_corrupted_stored_clip_is_never_served_and_is_rendered_again(home_with_model: Home) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS)
    assert all(o.success for o in run_shards(home, instance, keys))
    victim = sorted(home.store.glob("*/*.mp4"))[0]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated on disk

    assert all(o.success for o in run_shards(home, instance, keys))
    meta = render_metadata(instance, keys[0])
    assert meta["cache_hits"] == 1 and meta["rendered"] == 1  # the damaged one is a miss, re-rendered
    from sora_assets.resources.store import LocalClipStore

    store = LocalClipStore(root=str(home.store))
    for row in warehouse(home).query("SELECT cache_key, sha256 FROM clips").itertuples():
        assert store.lookup(row.cache_key).sha256 == row.sha256  # every clip row points at a verified object


def test_run_logs_never_contain_key_material_and_keys_are_private(home_with_model: Home) -> None:
    home = home_with_model
    instance, keys = submit(home, ROWS[:1])
    assert all(o.success for o in run_shards(home, instance, keys, log_level="DEBUG"))
    key_files = sorted(home.keys.glob("*.key"))
    assert key_files and all(p.stat().st_mode & 0o777 == 0o600 for p in key_files)
    secrets = [p.read_text().strip().splitlines()[1] for p in key_files]  # a line of each private key
    logged = "\n".join(str(e.user_message) + str(e.dagster_event) for run in instance.get_runs()
                       for e in instance.all_logs(run.run_id))
    assert "PRIVATE KEY" not in logged and not any(secret in logged for secret in secrets)
    assert files_outside(home) == set()


def files_outside(home: Home) -> set[Path]:
    """Files next to the home that the pipeline created (the test's batch file is allowed)."""
    return {p for p in home.root.parent.rglob("*") if p.is_file()
            and not p.is_relative_to(home.root) and p.suffix != ".jsonl"}
