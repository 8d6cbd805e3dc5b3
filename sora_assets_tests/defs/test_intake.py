import json
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from sora_assets.core.storage.home import Home
from sora_assets.defs.intake import register_inbox
from sora_assets.resources.home import HomeResource

GOOD = b"\n".join([
    b'{"prompt": "a paid shot of the sea", "tier": "paid"}',
    b'{"prompt": "a free shot of a hill"}',
    b'{"prompt": "another free shot", "tier": "free"}',
])


def tick(home: Home, instance: DagsterInstance, shard_size: int = 64):
    resource = HomeResource(path=str(home.root), shard_size=shard_size)
    with build_sensor_context(instance=instance, resources={"home": resource}) as context:
        result = register_inbox(context, resource)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions("shards", list(request.partition_keys))
    return result


def test_a_batch_file_becomes_single_tier_shards_with_runs(home: Home) -> None:
    (home.inbox / "Studio Batch, v2.jsonl").write_bytes(GOOD)
    with DagsterInstance.ephemeral() as instance:
        result = tick(home, instance, shard_size=1)
        keys = instance.get_dynamic_partitions("shards")
    assert len(keys) == 3
    assert all(k.startswith("studio-batch-v2-") and "," not in k and len(k) <= 64 for k in keys)
    assert [r.partition_key for r in result.run_requests] == keys
    priorities = {r.partition_key: r.tags["dagster/priority"] for r in result.run_requests}
    assert priorities[keys[0]] == "10" and priorities[keys[1]] == "0"  # paid shard first, higher priority
    assert not any(home.inbox.iterdir())
    batch_dir = home.batches / keys[0].rsplit("-s", 1)[0]
    assert (batch_dir / "source.jsonl").read_bytes() == GOOD
    assert (batch_dir / "source.jsonl").stat().st_mode & 0o222 == 0  # immutable copy


def test_resubmitting_the_same_file_does_nothing(home: Home) -> None:
    with DagsterInstance.ephemeral() as instance:
        (home.inbox / "batch.jsonl").write_bytes(GOOD)
        tick(home, instance)
        (home.inbox / "batch.jsonl").write_bytes(GOOD)
        again = tick(home, instance)
        assert again.run_requests == [] and not again.dynamic_partitions_requests
        assert len(instance.get_dynamic_partitions("shards")) == 2
    assert not any(home.inbox.iterdir())


def test_bad_files_are_quarantined_with_reasons_and_never_crash_the_sensor(home: Home) -> None:
    (home.inbox / "empty.jsonl").write_bytes(b"")
    (home.inbox / "garbage.parquet").write_bytes(bytes(range(256)) * 4)
    (home.inbox / "notes.txt").write_text("hello")
    (home.inbox / "no_prompt.csv").write_text("text,tier\nhello,free\n")
    (home.inbox / "good.jsonl").write_bytes(GOOD)
    (home.inbox / ".partial-upload.jsonl").write_bytes(b"{")  # still being written: ignored
    with DagsterInstance.ephemeral() as instance:
        result = tick(home, instance)
    reasons = {json.loads(p.read_text())["source_name"]: json.loads(p.read_text())["reason"]
               for p in (home.quarantine / "files").glob("*.reason.json")}
    assert reasons.keys() == {"empty.jsonl", "garbage.parquet", "notes.txt", "no_prompt.csv"}
    assert "empty" in reasons["empty.jsonl"]
    assert "Parquet" in reasons["garbage.parquet"]
    assert "unsupported" in reasons["notes.txt"]
    assert "prompt" in reasons["no_prompt.csv"]
    assert len(result.run_requests) == 2
    assert [p.name for p in home.inbox.iterdir()] == [".partial-upload.jsonl"]
    quarantined = [p for p in (home.quarantine / "files").iterdir() if not p.name.endswith(".json")]
    assert len(quarantined) == 4  # moved, not deleted: nothing is lost


def test_a_file_name_with_path_tricks_stays_inside_the_home(home: Home, tmp_path: Path) -> None:
    (home.inbox / "batch ..%2F..%2Fescape ü.jsonl").write_bytes(GOOD)
    with DagsterInstance.ephemeral() as instance:
        tick(home, instance)
        keys = instance.get_dynamic_partitions("shards")
    assert keys and all(k.isascii() for k in keys)
    assert not (tmp_path / "escape").exists()
    assert all(home.root in p.resolve().parents for p in home.batches.rglob("*"))
