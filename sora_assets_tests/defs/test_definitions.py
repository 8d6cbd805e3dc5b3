import subprocess
import sys

from dagster import AssetKey

from sora_assets.definitions import defs

DESIGN_ASSETS = ["prompt_shards", "validated_prompts", "rendered_clips", "screened_clips", "signed_clips",
                 "published_clips", "sequences"]


def test_definitions_load_with_every_stage_linked_in_order() -> None:
    graph = defs.resolve_asset_graph()
    expected = set(DESIGN_ASSETS) | {"render_plan", "golden_eval", "slo_snapshots"}
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == expected
    assert AssetKey("validated_prompts") in graph.get(AssetKey("render_plan")).parent_keys
    for upstream, downstream in zip(DESIGN_ASSETS, DESIGN_ASSETS[1:], strict=False):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys


def test_render_job_sensor_and_gpu_pool_are_defined() -> None:
    assert defs.resolve_job_def("render_shard") is not None
    assert defs.resolve_sensor_def("inbox_sensor").job_name == "render_shard"
    rendered = defs.resolve_assets_def("rendered_clips")
    assert rendered.node_def.pool == "gpu"
    assert defs.resolve_job_def("plan_renders") is not None
    window = defs.resolve_sensor_def("plan_window_sensor")
    assert {job.name for job in window.jobs} == {"render_shard", "plan_renders"}


def test_publishing_declares_its_gate_checks() -> None:
    checks = {key.name for key in defs.resolve_assets_def("published_clips").check_keys}
    assert checks == {"published_clips_scanned_and_trusted", "ledger_has_one_row_per_clip",
                      "published_clips_have_scan_records"}


def test_every_asset_is_partitioned_by_shard() -> None:
    for name in DESIGN_ASSETS:
        assert defs.resolve_assets_def(name).partitions_def.name == "shards"


def test_workspace_yaml_loads_with_the_dagster_cli(tmp_path) -> None:
    env_home = {"SORA_ASSETS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path)}
    import os

    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                            capture_output=True, text=True, env={**os.environ, **env_home}, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_golden_eval_runs_daily_on_a_schedule() -> None:
    schedule = defs.resolve_schedule_def("golden_eval_schedule")
    assert schedule.cron_schedule == "0 6 * * *" and schedule.job_name == "golden_eval_job"
