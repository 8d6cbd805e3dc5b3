"""Issue 19 (1), the parts that need no daemon: run monitoring in every instance profile, a runtime limit on
render runs from the shard's estimate, and the fence that keeps an orphaned step from publishing."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dagster import DagsterRunStatus
from dagster._core.instance.config import dagster_instance_config

from sora_assets.core.planning.runtime_limits import MAX_RUNTIME_TAG, render_max_runtime_s
from sora_assets.core.storage.home import Home
from sora_assets.defs import fencing
from sora_assets.defs.fencing import RunFenced, StepFence
from sora_assets.defs.launching import _render_request
from sora_assets.resources.planner import PlannerResource
from sora_assets.resources.warehouse import ParquetWarehouse

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("profile", ["dagster.yaml", "infra/dagster-postgres.yaml"])
def test_every_instance_profile_monitors_runs_and_frees_dead_runs_slots(tmp_path: Path, profile: str) -> None:
    shutil.copy(REPO / profile, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema validation
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 120
    assert 0 < monitoring["poll_interval_seconds"] <= 60
    assert monitoring["max_runtime_seconds"] > 0  # the backstop for runs without their own limit


def test_the_helm_chart_turns_run_monitoring_on_too() -> None:
    daemon = yaml.safe_load((REPO / "infra/helm/values.yaml").read_text())["dagsterDaemon"]
    assert daemon["runMonitoring"]["enabled"] is True
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] > 0


def test_render_runs_carry_a_max_runtime_derived_from_the_shard_estimate() -> None:
    assert render_max_runtime_s(0.0) == 1800  # the floor: start-up alone never trips it
    assert render_max_runtime_s(3600.0) == 600 + 4 * 3600
    assert render_max_runtime_s(3600.0) > render_max_runtime_s(600.0)
    with pytest.raises(ValueError):
        render_max_runtime_s(-1.0)
    shard = {"tier": "paid", "batch_id": "b", "account": "a"}
    request = _render_request("b-s000", shard, "2026-12-01T02:00:00+00:00", "plan-1", 7200.0)
    assert request.tags[MAX_RUNTIME_TAG] == str(600 + 4 * 7200)


class FakeContext(SimpleNamespace):
    """What StepFence reads of a step context: the run id, the instance's view of the run, a logger."""


def fake_context(status: DagsterRunStatus) -> FakeContext:
    state = {"status": status}
    run = SimpleNamespace(status=None)
    instance = SimpleNamespace(get_run_by_id=lambda _run_id: SimpleNamespace(status=state["status"]))
    log = SimpleNamespace(error=lambda _msg: None)
    return FakeContext(run_id="r1", instance=instance, log=log, state=state, run=run)


def test_the_fence_stops_a_step_once_its_run_failed_or_its_coordinator_died(monkeypatch: pytest.MonkeyPatch) -> None:
    context = fake_context(DagsterRunStatus.STARTED)
    fence = StepFence(context)
    fence.check("publishing")  # alive: no error
    context.state["status"] = DagsterRunStatus.FAILURE
    with pytest.raises(RunFenced, match="is FAILURE"):
        fence.check("publishing")
    alive = StepFence(fake_context(DagsterRunStatus.STARTED))
    parent = alive.parent
    monkeypatch.setattr(fencing.os, "getppid", lambda: parent + 1)  # reparented: the coordinator is gone
    with pytest.raises(RunFenced, match="coordinator"):
        alive.check("writing ledger rows")


FAIL_THE_RUN = {"instance": None}


class PlannerThatSeesTheRunFail(PlannerResource):
    """Marks the running shard's run failed while published_clips is mid-way (as run monitoring would after its
    coordinator died): the ledger must not be written by the step that lives on."""

    def prices(self, home: Home):  # noqa: ANN201
        instance = FAIL_THE_RUN["instance"]
        for run in instance.get_runs():
            if run.status == DagsterRunStatus.STARTED:
                instance.report_run_failed(run, "test: the run coordinator died")
        return super().prices(home)


@pytest.mark.slow
def test_a_step_whose_run_failed_writes_no_ledger_rows(home_with_model: Home) -> None:
    from sora_assets.services.runner import run_shards
    from sora_assets_tests.conftest import registered_batch

    instance, keys = registered_batch(home_with_model, "two.jsonl")
    FAIL_THE_RUN["instance"] = instance
    outcomes = run_shards(home_with_model, instance, keys, resource_overrides={"planner": PlannerThatSeesTheRunFail()})
    assert not outcomes[0].success and "fenced before writing ledger rows" in (outcomes[0].error or "")
    warehouse = ParquetWarehouse(root=str(home_with_model.warehouse), db_path=str(home_with_model.warehouse_db))
    assert warehouse.read("cost_ledger", keys[0]).empty and warehouse.read("clips", keys[0]).empty
