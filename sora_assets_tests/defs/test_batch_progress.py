"""The studio's view of its night in the UI: the batch_completion sensor reports each unfinished batch's figures
as a `batch_progress` observation (partition = batch id), again only when they change."""

from __future__ import annotations

from dagster import build_sensor_context

from sora_assets.core.intake.batch_files import batch_id_for
from sora_assets.core.storage.home import Home
from sora_assets.defs.observability import BATCH_PROGRESS, batch_completion_sensor
from sora_assets.defs.partitions import BATCHES
from sora_assets.resources.home import HomeResource, storage_resources
from sora_assets.resources.observability import ObservabilityResource
from sora_assets.services.runner import submit_file, tick_inbox
from sora_assets_tests.conftest import HARBOUR_AND_LIGHTHOUSE, registered_batch


def test_batch_progress_is_observed_per_batch_and_only_when_it_changes(home: Home) -> None:
    instance, keys = registered_batch(home, "harbour.jsonl")
    batch_id = batch_id_for("harbour.jsonl", HARBOUR_AND_LIGHTHOUSE.encode())
    resources = {"home": HomeResource(path=str(home.root)), "warehouse": storage_resources(home)["warehouse"],
                 "observability": ObservabilityResource()}

    def tick(cursor: str | None):  # noqa: ANN202 - the SensorResult
        with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
            return batch_completion_sensor(context)

    try:
        first = tick(None)
        (event,) = first.asset_events
        assert event.asset_key.path == [BATCH_PROGRESS] and event.partition == batch_id
        figures = {k: v.value for k, v in event.metadata.items()}
        assert figures["rows"] == 2 and figures["clips_total"] == 2 and figures["clips_done"] == 0
        assert figures["shards"] == len(keys) == figures["shards_pending"] and figures["finished"] is False
        assert figures["done_pct"] == 0.0 and figures["cost_usd"] == 0.0
        assert batch_id in instance.get_dynamic_partitions(BATCHES)  # the partition exists for the UI

        assert tick(first.cursor).asset_events == []  # nothing changed: nothing reported

        other = home.root.parent / "fox.jsonl"  # a second batch: only it is new
        other.write_text('{"prompt": "a red fox in the snow", "steps": 3}\n')
        submit_file(home, other)
        tick_inbox(home, instance)
        (new,) = tick(first.cursor).asset_events
        assert new.partition == batch_id_for("fox.jsonl", other.read_bytes()) != batch_id
    finally:
        instance.dispose()
