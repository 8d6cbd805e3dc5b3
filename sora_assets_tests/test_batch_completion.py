"""A small batch rendered to completion: exactly one completion notification (webhook + warehouse row) with the
right counts, and `sora-assets status --batch` shows the same figures."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from sora_assets.cli import app
from sora_assets.core.intake.batch_files import batch_id_for
from sora_assets.core.storage.home import Home
from sora_assets.resources.home import storage_resources
from sora_assets.services.observability import notify_finished_batches
from sora_assets_tests.conftest import HARBOUR_AND_LIGHTHOUSE, registered_batch


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_a_finished_batch_is_notified_exactly_once_with_its_counts(home_with_model: Home, monkeypatch) -> None:
    from sora_assets.services.runner import run_shards

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    text = HARBOUR_AND_LIGHTHOUSE + '{"prompt": "a quiet harbour at dawn", "steps": 3, "id": "again"}\n'
    instance, keys = registered_batch(home_with_model, "harbour.jsonl", text)
    batch_id = batch_id_for("harbour.jsonl", text.encode())
    warehouse = storage_resources(home_with_model)["warehouse"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received = []
    url = f"http://127.0.0.1:{server.server_address[1]}/batches"
    try:
        assert notify_finished_batches(home_with_model, instance, warehouse, datetime.now(UTC), url) == []
        outcomes = run_shards(home_with_model, instance, keys, shard_size=64)
        assert all(o.success for o in outcomes)
        for _ in range(2):  # two sensor ticks after the batch finished: one notification
            notify_finished_batches(home_with_model, instance, warehouse, datetime.now(UTC), url)
    finally:
        server.shutdown()
        instance.dispose()
    (sent,) = Hook.received
    assert sent["event"] == "batch_finished" and sent["batch_id"] == batch_id and sent["finished"]
    # three rows, two distinct specs: one rendered, the repeat is rendered once per shard (a cache hit or a
    # duplicate), nothing blocked or dead
    assert sent["rows"] == 3 and sent["shards"] == len(keys) == sent["shards_published"]
    assert sent["shards_failed"] == 0 and sent["failures"] == []
    assert sent["rendered"] == 2 and sent["cache_hits"] == 1 and sent["clips_done"] == 3
    assert sent["blocked"] == 0 and sent["dead_letters"] == 0
    assert sent["gpu_hours"] > 0 and sent["cost_usd"] > 0 and sent["savings_usd"] > 0
    (row,) = warehouse.query("SELECT * FROM batch_completions").to_dict(orient="records")
    assert row["batch_id"] == batch_id and row["rendered"] == 2 and row["webhook_status"] == "sent 204"
    result = CliRunner().invoke(app, ["status", "--home", str(home_with_model.root), "--batch", batch_id,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {k: figures[k] for k in ("rendered", "shards_published", "finished", "cost_usd")} == {
        "rendered": 2, "shards_published": len(keys), "finished": True, "cost_usd": sent["cost_usd"]}
    missing = CliRunner().invoke(app, ["status", "--home", str(home_with_model.root), "--batch", "nope"])
    assert missing.exit_code == 2 and "no registered batch" in missing.output
