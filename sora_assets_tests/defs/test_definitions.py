import subprocess
import sys

from dagster import AssetKey

from sora_assets.definitions import defs
from sora_assets.defs.catalog import GROUPS, OWNERS

DESIGN_ASSETS = ["prompt_shards", "validated_prompts", "rendered_clips", "screened_clips", "signed_clips",
                 "published_clips", "sequences"]
# every asset's group, as the issue names them: the UI's asset graph tells a batch's story by these groups
DESIGN_GROUPS = {"prompt_shards": "intake", "validated_prompts": "intake", "render_plan": "planning",
                 "rendered_clips": "generation", "screened_clips": "safety", "golden_eval": "safety",
                 "signed_clips": "provenance", "published_clips": "warehouse", "sequences": "warehouse",
                 "slo_snapshots": "warehouse", "batch_progress": "warehouse"}
# the partitioned checks each shard's run records, per asset
SHARD_CHECKS = {"screened_clips": {"every_rendered_clip_scanned"}, "signed_clips": {"signed_clips_verify_trusted"},
                "published_clips": {"published_clips_scanned_and_trusted", "ledger_has_one_row_per_clip",
                                    "published_clips_have_scan_records"},
                "sequences": {"stitched_sequences_are_trusted"}}


def test_definitions_load_with_every_stage_linked_in_order() -> None:
    graph = defs.resolve_asset_graph()
    expected = set(DESIGN_ASSETS) | {"render_plan", "golden_eval", "slo_snapshots", "batch_progress"}
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


def test_gate_checks_sit_beside_the_assets_they_guard_and_are_partitioned_by_shard() -> None:
    graph = defs.resolve_asset_graph()
    for name, expected in SHARD_CHECKS.items():
        assets_def = defs.resolve_assets_def(name)
        assert {key.name for key in assets_def.check_keys} == expected
        for spec in assets_def.check_specs:
            assert spec.partitions_def is not None and spec.partitions_def.name == "shards", spec.name
            assert spec.description
    assert {key.asset_key.to_user_string() for key in graph.asset_check_keys} == set(SHARD_CHECKS)


def test_every_asset_has_its_design_group_owners_kinds_and_a_description() -> None:
    graph = defs.resolve_asset_graph()
    assert set(DESIGN_GROUPS) == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(DESIGN_GROUPS.values()) == set(GROUPS)  # no group of the issue is empty, none is extra
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name == DESIGN_GROUPS[name], name
        assert list(node.owners) == OWNERS[node.group_name] and node.owners, name
        assert node.kinds, name
        assert node.description and len(node.description) > 40, name


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


def test_the_backfill_cli_selects_exactly_the_shard_job_assets() -> None:
    from sora_assets.defs.jobs import SHARD_ASSETS
    from sora_assets.services.backfill import SHARD_ASSET_KEYS

    # backfill.py stays free of Dagster imports (the CLI talks GraphQL), so its list is checked here
    assert [assets_def.key.to_user_string() for assets_def in SHARD_ASSETS] == SHARD_ASSET_KEYS
