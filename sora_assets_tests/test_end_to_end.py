"""The walking skeleton's promises, end to end, through the real CLI and the real Dagster assets."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from sora_assets.core.render.video_io import decode_mp4
from sora_assets.core.storage.home import Home
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets_tests.conftest import SAMPLE, flip_byte_in, mp4_box

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sora-assets", *args], capture_output=True, text=True, env=env, timeout=timeout)


def sql(home: Path, query: str) -> list[tuple]:
    # plain duckdb on the views file, as a user would
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import os

    home = tmp_path_factory.mktemp("demo") / "home"
    env = {**os.environ, "SORA_ASSETS_HOME": str(home)}
    started = time.monotonic()
    first = cli("demo", "--format", "json", env=env)
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:]
    snapshot = {
        "ledger": sql(home, "SELECT clip_id, gpu_seconds, cache_hit FROM cost_ledger ORDER BY clip_id"),
        "objects": sorted(p.name for p in (home / "store").glob("*/*.mp4")),
    }
    second = cli("demo", "--format", "json", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    return {"home": home, "env": env, "first": json.loads(first.stdout), "second": json.loads(second.stdout),
            "first_stderr": first.stderr,
            "elapsed": elapsed, "snapshot": snapshot}


def test_demo_renders_the_sample_within_budget(demo_home: dict) -> None:
    assert demo_home["elapsed"] < 180
    rows = demo_home["first"]["rows"]
    assert len(rows) == 2  # the sample splits into a paid and a free shard
    assert sum(r["published"] for r in rows) == 11
    assert sum(r["rejected"] for r in rows) == 2
    assert sum(r["sequences"] for r in rows) == 1  # the sample's shot group, cut into one sequence
    assert all(r["gpu_seconds"] > 0 for r in rows)


def test_demo_shows_step_progress_and_published_clips_carry_per_step_timing(demo_home: dict) -> None:
    assert "denoising demo-batch-" in demo_home["first_stderr"]  # the per-clip step bar
    sidecars = [json.loads(p.read_text()) for p in (demo_home["home"] / "store").glob("*/*.json")]
    assert len(sidecars) == 12  # 11 clips and the stitched sequence
    for sidecar in (s for s in sidecars if s.get("kind") != "sequence"):
        steps = sidecar["spec"]["steps"]
        assert sidecar["steps_run"] == steps == len(sidecar["step_seconds"])
        assert all(s > 0 for s in sidecar["step_seconds"]) and sidecar["device"] == "cpu"


def test_every_published_clip_decodes_and_verifies_trusted(demo_home: dict, tmp_path: Path) -> None:
    home, env = demo_home["home"], demo_home["env"]
    published = sql(home, "SELECT store_path, num_frames, width, height FROM clips")
    assert len(published) == 11
    for store_path, num_frames, width, height in published:
        frames = decode_mp4(Path(store_path))
        assert frames.shape == (num_frames, height, width, 3)
        data = Path(store_path).read_bytes()  # fast start: a browser can play it before the whole file arrives
        assert mp4_box(data, "moov")[0] < mp4_box(data, "mdat")[0], store_path
        result = cli("verify", store_path, env=env)
        assert result.returncode == 0 and "Trusted" in result.stdout, result.stdout + result.stderr
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(flip_byte_in(Path(published[0][0]).read_bytes(), "mdat"))
    result = cli("verify", str(tampered), env=env)
    assert result.returncode != 0
    assert "Invalid" in result.stdout


def test_ledger_has_one_row_per_rendered_clip_and_rejections_have_reasons(demo_home: dict) -> None:
    home = demo_home["home"]
    ledger = demo_home["snapshot"]["ledger"]
    assert len(ledger) == 11 and len({clip for clip, _, _ in ledger}) == 11
    assert all(gpu > 0 and not hit for _, gpu, hit in ledger)
    columns = {c for (c,) in sql(home, "SELECT column_name FROM (DESCRIBE cost_ledger)")}
    assert {"partition_key", "batch_id", "clip_id", "tier", "model", "steps", "gpu_seconds", "window_start",
            "price_per_gpu_hour", "cost_usd", "api_equivalent_usd", "cache_hit"} <= columns
    rejections = dict(sql(home, "SELECT source_id, stage || ': ' || reason FROM rejections"))
    assert rejections["bad-size"].startswith("expectations: width must be")
    assert rejections["blocked-gore"].startswith("prefilter: blocked by text pre-filter: violence_gore")
    excerpt = sql(home, "SELECT prompt_excerpt, prompt_sha256 FROM rejections WHERE source_id = 'blocked-gore'")
    assert excerpt[0][0] is None and len(excerpt[0][1]) == 64  # a blocked prompt is stored by hash only
    steps = dict(sql(home, "SELECT tier, max(steps) FROM cost_ledger GROUP BY tier"))
    assert steps == {"free": 30, "paid": 50}


def test_the_samples_shot_group_becomes_one_trusted_sequence(demo_home: dict) -> None:
    home, env = demo_home["home"], demo_home["env"]
    ((status, shots, frames, fps, store_path, sha256),) = sql(
        home, "SELECT status, shots, frames, fps, store_path, sha256 FROM sequences")
    # the fixture ran the demo twice: the first run stitched the cut, the second found it in the store
    assert f"{sha256}.mp4" in demo_home["snapshot"]["objects"]
    assert (status, shots, fps) == ("cached", 3, 8) and frames == 3 * 9 - 2 * 2
    assert decode_mp4(Path(store_path)).shape[0] == frames
    result = cli("verify", store_path, env=env)
    assert result.returncode == 0 and "Trusted" in result.stdout, result.stdout + result.stderr
    edl = sql(home, "SELECT shot_id, reference FROM edit_decisions ORDER BY shot")
    assert edl == [("library/01", "text prompt only"), ("library/02", "shot 1 seed + environment"),
                   ("library/03", "shot 1 seed + environment + last frame of shot 2")]
    seeds = sql(home, "SELECT DISTINCT seed FROM clips WHERE source_id LIKE 'library-%'")
    assert seeds == [(2026,)]


def test_running_the_demo_again_renders_nothing_new(demo_home: dict) -> None:
    home = demo_home["home"]
    after = sql(home, "SELECT clip_id, gpu_seconds, cache_hit FROM cost_ledger ORDER BY clip_id")
    assert after == demo_home["snapshot"]["ledger"]  # no duplicate rows, no GPU-seconds added
    assert sorted(p.name for p in (home / "store").glob("*/*.mp4")) == demo_home["snapshot"]["objects"]
    rows = demo_home["second"]["rows"]
    assert sum(r["cache_hits"] for r in rows) == 11 and sum(r["published"] for r in rows) == 0
    assert sum(r["sequences"] for r in rows) == 1
    statuses = sql(home, "SELECT DISTINCT status FROM clips")
    assert statuses == [("cache_hit",)]


def test_validate_prints_every_rows_decision_as_json(cli_env: dict[str, str]) -> None:
    result = cli("validate", str(SAMPLE), "--format", "json", env=cli_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_row = {r["row"]: r for r in report["rows"]}
    assert len(by_row) == 13
    assert (report["accepted"], report["rejected"], report["blocked"]) == (11, 1, 1)
    assert by_row[8]["status"] == "rejected" and "width" in by_row[8]["reason"]
    assert by_row[9]["status"] == "blocked" and by_row[9]["category"] == "violence_gore"
    assert any("snapped" in w for w in by_row[2]["warnings"])
    assert not Path(cli_env["SORA_ASSETS_HOME"]).exists()  # a dry run writes nothing
    assert "validating" in result.stderr and "13/13" in result.stderr  # progress goes to stderr, never stdout


def test_validate_fails_with_a_one_line_reason_on_an_unreadable_file(tmp_path: Path,
                                                                      cli_env: dict[str, str]) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    result = cli("validate", str(broken), env=cli_env)
    assert result.returncode != 0
    assert "Parquet" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = cli("validate", str(tmp_path / "absent.jsonl"), env=cli_env)
    assert missing.returncode != 0 and "absent.jsonl" in missing.stderr


class BlockEverything(FrameSafetyResource):
    """Test double for the detector's judgement: every clip is blocked, so the gate can be observed."""

    def scan(self, frames, non_finite=None, prompt=""):
        verdict = super().scan(frames, non_finite, prompt)
        verdict.verdict, verdict.reasons = "block", ["test:forced-block"]
        return verdict


def test_a_blocked_clip_is_quarantined_and_never_signed_or_published(home_with_model: Home) -> None:
    from sora_assets.resources.warehouse import ParquetWarehouse
    from sora_assets.services.runner import run_shards
    from sora_assets_tests.conftest import registered_batch

    home = home_with_model
    instance, keys = registered_batch(home, "two.jsonl")
    outcomes = run_shards(home, instance, keys, resource_overrides={"frame_safety": BlockEverything()})
    assert all(o.success for o in outcomes)
    quarantined = sorted((home.quarantine / keys[0]).glob("*.mp4"))
    assert len(quarantined) == 2
    reason = json.loads(quarantined[0].with_suffix(".reason.json").read_text())
    assert reason["reasons"] == ["test:forced-block"]
    assert not list(home.store.glob("*/*.mp4"))  # nothing published
    import cv2
    import numpy as np

    sheet = cv2.imdecode(np.frombuffer((home.previews / f"{keys[0]}.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert set(np.unique(sheet[:, sheet.shape[1] * 3 // 7:])) <= {96, 255}  # blocked: no pixel of the clips shown
    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    clips = warehouse.query("SELECT status, c2pa_state, sha256 FROM clips")
    assert set(clips.status) == {"blocked"} and clips.c2pa_state.isna().all() and clips.sha256.isna().all()
    ledger = warehouse.query("SELECT gpu_seconds, cache_hit FROM cost_ledger")
    assert len(ledger) == 2 and (ledger.gpu_seconds > 0).all()  # the GPU time was spent and is on the books


def test_every_sql_query_in_the_readme_runs_on_the_demo_warehouse(demo_home: dict) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("```sql\n-- 1."):]
    block = block[len("```sql\n"):block.index("```", len("```sql\n"))]
    statements = ["\n".join(line for line in s.splitlines() if not line.strip().startswith("--")).strip()
                  for s in block.split(";")]
    statements = [s for s in statements if s]
    assert len(statements) >= 8
    results = {s.split()[3] if s.startswith("SELECT *") else s: sql(demo_home["home"], s) for s in statements}
    assert len(results["v_cost_by_batch"]) == 1 and results["v_cost_by_batch"][0][1] == 11  # 11 clips in the ledger
    assert len(results["v_cost_by_tier"]) == 2


def test_eval_passes_on_the_demo_and_catches_a_miscounted_clip(demo_home: dict, tmp_path: Path) -> None:
    import os
    import shutil

    home = shutil.copytree(demo_home["home"], tmp_path / "home")  # tampered below: keep the shared home intact
    env = {**os.environ, "SORA_ASSETS_HOME": str(home)}
    first = cli("eval", "--format", "json", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    checks = {r["check_name"]: r for r in json.loads(first.stdout)["rows"]}
    assert checks["step_budget"]["passed"] and checks["c2pa_trusted"]["value"] == 11
    assert checks["determinism"]["value"] == 2 and checks["drift_flicker"]["detail"].startswith("first eval run")

    # a clip's record, not the stitched sequence's (signed bytes, so its sha256 sorts anywhere)
    sidecar = next(p for p in sorted(home.glob("store/*/*.json")) if json.loads(p.read_text()).get("kind") is None)
    record = json.loads(sidecar.read_text())
    record["step_seconds"] = record["step_seconds"][:-1]  # a clip that ran one step fewer than it claims
    sidecar.write_text(json.dumps(record))
    second = cli("eval", "--sample", "1", "--format", "json", env=env)
    assert second.returncode == 1
    rows = {r["check_name"]: r for r in json.loads(second.stdout)["rows"]}
    assert "drift_flicker" in rows, second.stdout
    assert not rows["step_budget"]["passed"] and rows["step_budget"]["value"] == 1
    assert rows["drift_flicker"]["passed"] and rows["drift_flicker"]["detail"] == "relative change 0.000"
    assert len(sql(home, "SELECT DISTINCT eval_id FROM eval_results WHERE eval_id LIKE 'eval-%'")) == 2
    assert len(sql(home, "SELECT DISTINCT eval_id FROM eval_results WHERE eval_id LIKE 'safety-%'")) == 2
    assert rows["golden_must_block_rate"]["passed"] and rows["frame_fixture_coffee_pan"]["passed"]


def test_a_mixed_wan_and_ltx_demo_renders_signs_and_reports_per_family(demo_home: dict, tmp_path: Path,
                                                                       tiny_ltx_dir: Path) -> None:
    """`demo --mixed` in a copy of the demo home: its Wan row is a cache hit of the demo's, so only the two
    LTX-Video clips render (the test pays for one shard of the second family, not a second demo)."""
    import os
    import shutil

    home = shutil.copytree(demo_home["home"], tmp_path / "home")
    shutil.copytree(tiny_ltx_dir, home / "models" / tiny_ltx_dir.name)  # the session's build, as for tiny-wan
    env = {**os.environ, "SORA_ASSETS_HOME": str(home)}
    result = cli("demo", "--mixed", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["published"], row["cache_hits"], row["rejected"], row["blocked"]) == (2, 1, 1, 0)
    clips = sql(home, "SELECT source_id, model_family, model, status, width, num_frames, store_path FROM clips "
                      "WHERE batch_id LIKE 'demo-mixed-%' ORDER BY source_id")
    assert [c[:6] for c in clips] == [("fox-forest", "wan", "tiny-wan", "cache_hit", 64, 9),
                                      ("fox-forest-ltx", "ltx", "tiny-ltx", "published", 64, 9),
                                      ("waves-ltx", "ltx", "tiny-ltx", "published", 64, 9)]  # 72x?x12 on LTX's grid
    ltx_paths = [c[6] for c in clips if c[1] == "ltx"]
    assert all(decode_mp4(Path(p)).shape == (9, 64, 64, 3) for p in ltx_paths)
    verified = cli("verify", ltx_paths[0], env=env)  # one: the signing path is the same for both
    assert verified.returncode == 0 and "Trusted" in verified.stdout  # the C2PA manifest names the family
    assert "model=tiny-ltx" in verified.stdout and "family=ltx" in verified.stdout
    by_family = sql(home, "SELECT model_family, clips, rendered, cache_hits FROM v_cost_by_batch "
                          "WHERE batch_id LIKE 'demo-mixed-%' ORDER BY model_family")
    assert by_family == [("ltx", 2, 2, 0), ("wan", 1, 0, 1)]
    quality = dict(sql(home, "SELECT model_family || '/' || model, clips FROM v_quality_by_model"))
    assert quality["ltx/tiny-ltx"] == 2 and quality["wan/tiny-wan"] == 11
    (reason,) = sql(home, "SELECT reason FROM rejections WHERE source_id = 'bad-model'")
    assert "unknown model family 'sora-2'" in reason[0]
