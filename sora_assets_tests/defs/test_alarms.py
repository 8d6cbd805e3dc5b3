"""Each alarm from synthetic warehouse/instance states to a fired alert and a cleared one, on a simulated clock;
the webhook payload through the real sensor against a local HTTP server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterEvent, DagsterEventType, build_sensor_context
from dagster._core.test_utils import create_run_for_test, instance_for_test

from sora_assets.core.ops.alarms import Thresholds
from sora_assets.core.storage.fsutil import atomic_write_json
from sora_assets.core.storage.home import Home
from sora_assets.defs.generation import record_render_failure, worker_name
from sora_assets.defs.observability import alarm_sensor
from sora_assets.resources.home import HomeResource
from sora_assets.resources.observability import ObservabilityResource
from sora_assets.resources.warehouse import ParquetWarehouse
from sora_assets.runs import RENDER_JOB
from sora_assets.services.observability import open_alerts, run_alarm

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
T = Thresholds()


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as found:
        yield found


@pytest.fixture
def warehouse(home: Home) -> ParquetWarehouse:
    return ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))


def alarm(name: str, home: Home, instance, warehouse: ParquetWarehouse, now: datetime):
    return run_alarm(name, home, instance, warehouse, now, T)


def clips(warehouse: ParquetWarehouse, partition: str, n: int, at: datetime, tier: str = "free") -> None:
    warehouse.write("clips", partition, "published_clips", [
        {"partition_key": partition, "clip_id": f"{partition}-c{i}", "tier": tier, "status": "published",
         "recorded_at": at} for i in range(n)])


def assert_fired_then_cleared(first, second, signal: str) -> None:
    assert [a["signal"] for a in first.fired] == [signal] and first.resolved == []
    assert second.fired == [] and [a["signal"] for a in second.resolved] == [signal]
    assert second.resolved[0]["alert_id"] == first.fired[0]["alert_id"]


def test_nan_abort_rate(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    clips(warehouse, "b-s000", 10, NOW - timedelta(minutes=10))
    warehouse.write("dead_letters", "b-s000", "rendered_clips", [
        {"partition_key": "b-s000", "clip_id": "b-s000-c9", "tier": "free", "reason": "non_finite_latents",
         "recorded_at": NOW - timedelta(minutes=10)}])
    fired = alarm("nan_abort_rate", home, instance, warehouse, NOW)
    assert fired.signals[0].value == pytest.approx(0.1)  # 1 NaN in 10 active clips
    again = alarm("nan_abort_rate", home, instance, warehouse, NOW + timedelta(minutes=2))
    assert again.fired == [] and again.resolved == []  # still breached, already open: no duplicate
    clips(warehouse, "b-s001", 300, NOW + timedelta(hours=2))  # an hour later: 300 clean clips
    cleared = alarm("nan_abort_rate", home, instance, warehouse, NOW + timedelta(hours=2))
    assert cleared.signals[0].value == 0.0
    assert_fired_then_cleared(fired, cleared, "nan_abort_rate")
    (row,) = warehouse.query("SELECT * FROM alerts").to_dict(orient="records")  # rewritten, not duplicated
    assert (row["status"], row["severity"], row["runbook"]) == ("resolved", "critical", "nan-abort-rate")


def register(home: Home, shards: dict[str, str], submitted: datetime, batch_id: str = "night-0123456789") -> None:
    atomic_write_json(home.batches / batch_id / "batch.json", {
        "batch_id": batch_id, "shards": shards, "accounts": {k: "default" for k in shards},
        "submitted_at": submitted.isoformat(), "rows": len(shards)})


def test_paid_queue_wait(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    register(home, {"night-0123456789-s000": "paid", "night-0123456789-s001": "free"}, NOW - timedelta(hours=2))
    fired = alarm("paid_queue_wait", home, instance, warehouse, NOW)
    assert fired.signals[0].value == pytest.approx(7200.0)  # the paid shard has waited 2 h; the free one is ignored
    run = create_run_for_test(instance, job_name=RENDER_JOB, tags={"dagster/partition": "night-0123456789-s000"})
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=RENDER_JOB), run.run_id,
                                  timestamp=(NOW + timedelta(minutes=5)).timestamp())
    still = alarm("paid_queue_wait", home, instance, warehouse, NOW + timedelta(minutes=10))
    assert still.signals[0].value == pytest.approx(7500.0) and still.resolved == []  # it started after 2 h 5 min
    cleared = alarm("paid_queue_wait", home, instance, warehouse, NOW + timedelta(minutes=70))  # out of the window
    assert_fired_then_cleared(fired, cleared, "paid_queue_wait")


def test_negative_slack(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    key = "night-0123456789-s000"
    register(home, {key: "free"}, NOW - timedelta(hours=1))
    home.plans.mkdir(parents=True, exist_ok=True)
    atomic_write_json(home.plans / "latest.json", {"plan_id": "p1", "estimates": {}, "assignments": [
        {"shard": key, "start": (NOW + timedelta(hours=1)).isoformat(), "est_gpu_seconds": 3600.0,
         "deadline": (NOW + timedelta(hours=3)).isoformat()}]})
    calm = alarm("negative_slack", home, instance, warehouse, NOW)
    assert calm.signals[0].value == pytest.approx(3600.0) and calm.fired == []
    # 02:30 and it has not started (the daemon was down): it ends at 03:30 at best, 30 min after its deadline
    fired = alarm("negative_slack", home, instance, warehouse, NOW + timedelta(hours=2, minutes=30))
    assert fired.signals[0].value == pytest.approx(-1800.0) and key in fired.fired[0]["message"]
    warehouse.write("cost_ledger", key, "published_clips", [{"partition_key": key, "clip_id": "c"}])  # published
    cleared = alarm("negative_slack", home, instance, warehouse, NOW + timedelta(hours=3))
    assert_fired_then_cleared(fired, cleared, "negative_slack")


def scans(warehouse: ParquetWarehouse, writer: str, n: int, blocked: int, at: datetime) -> None:
    rows = []
    for i in range(n):
        clip = f"{writer}-c{i}"
        rows.append({"partition_key": "synthetic", "clip_id": clip, "stage": "frame", "check_name": "frame_scan",
                     "action": "block" if i < blocked else "pass", "recorded_at": at})
        if i < blocked:
            rows.append({"partition_key": "synthetic", "clip_id": clip, "stage": "frame", "check_name": "nudity",
                         "label": "FEMALE_BREAST_EXPOSED", "action": "block", "recorded_at": at})
    warehouse.write("safety_events", "synthetic", writer, rows)


def test_block_rate_jump_against_the_trailing_baseline(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    scans(warehouse, "baseline", 200, 2, NOW - timedelta(days=1))  # 1%
    scans(warehouse, "tiny", 3, 1, NOW - timedelta(minutes=20))  # 33% on 3 clips: too few to page anyone
    assert alarm("block_rate_jump", home, instance, warehouse, NOW).fired == []
    scans(warehouse, "recent", 40, 3, NOW - timedelta(minutes=10))  # now 4 of 43 = 9.3% > max(3 x 1%, 1% + 2)
    fired = alarm("block_rate_jump", home, instance, warehouse, NOW)
    assert fired.fired[0]["subject"] == "nudity" and fired.fired[0]["value"] == pytest.approx(4 / 43)
    assert fired.fired[0]["threshold"] == pytest.approx(0.03)
    scans(warehouse, "clean", 40, 0, NOW + timedelta(hours=2))  # the next hour: nothing blocked
    cleared = alarm("block_rate_jump", home, instance, warehouse, NOW + timedelta(hours=2, minutes=5))
    assert_fired_then_cleared(fired, cleared, "block_rate_jump:nudity")


def test_repeated_failures_on_one_worker(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    for minutes in (50, 30, 10):
        record_render_failure(warehouse, "b-s000", "run-abc", 0, "cuda:0", "transient", True, 2,
                              RuntimeError("CUDA error: an illegal memory access"), NOW - timedelta(minutes=minutes))
    (row,) = warehouse.query("SELECT worker, error FROM render_failures LIMIT 1").to_dict(orient="records")
    assert row["worker"] == worker_name("cuda:0") and "illegal memory access" in row["error"]
    fired = alarm("worker_failures", home, instance, warehouse, NOW)
    assert fired.fired[0]["subject"] == worker_name("cuda:0") and fired.fired[0]["value"] == 3.0
    cleared = alarm("worker_failures", home, instance, warehouse, NOW + timedelta(minutes=45))  # two aged out
    assert_fired_then_cleared(fired, cleared, f"worker_failures:{worker_name('cuda:0')}")


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_alarm_sensor_posts_the_alert_to_the_webhook(home: Home, instance, warehouse: ParquetWarehouse) -> None:
    clips(warehouse, "b-s000", 10, NOW - timedelta(minutes=10))
    warehouse.write("dead_letters", "b-s000", "rendered_clips", [
        {"partition_key": "b-s000", "clip_id": "b-s000-c0", "tier": "free", "reason": "non_finite_latents",
         "recorded_at": NOW - timedelta(minutes=10)}])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.received = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        sensor = alarm_sensor("nan_abort_rate")

        def tick(at: datetime) -> str:
            resources = {"home": HomeResource(path=str(home.root)), "warehouse": warehouse,
                         "observability": ObservabilityResource(webhook_url=url, clock=at.isoformat(),
                                                                runbook_url="https://runbooks.example/RUNBOOK.md")}
            with build_sensor_context(instance=instance, resources=resources) as context:
                return sensor(context).skip_message

        assert tick(NOW).startswith("1 fired")
        assert tick(NOW + timedelta(minutes=2)).startswith("0 fired, 0 resolved")
        assert tick(NOW + timedelta(hours=2)).startswith("0 fired, 1 resolved")  # no active clips in the window
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    fired, resolved = Hook.received
    assert fired == {**fired, "status": "firing", "alarm": "nan_abort_rate", "signal": "nan_abort_rate",
                     "severity": "critical", "threshold": 0.005, "samples": 10,
                     "runbook": "https://runbooks.example/RUNBOOK.md#nan-abort-rate",
                     "fired_at": NOW.isoformat(), "resolved_at": None}
    assert fired["value"] == pytest.approx(0.1)
    assert resolved["status"] == "resolved" and resolved["alert_id"] == fired["alert_id"]
    assert resolved["resolved_at"] == (NOW + timedelta(hours=2)).isoformat()
    assert open_alerts(warehouse) == []
    (row,) = warehouse.query("SELECT webhook_status FROM alerts").to_dict(orient="records")
    assert row["webhook_status"] == "sent 204"
