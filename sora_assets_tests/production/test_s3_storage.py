"""Store, checkpoints and warehouse on S3: a real moto server (a subprocess, stopped by PID) behind a
proxy that injects S3 errors. Publishing, cache hits across machines (homes), resume from a checkpoint
another machine wrote, the reports from an empty machine, and retries that never leave a wrong index."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from sora_assets.core.storage.home import Home
from sora_assets_tests.production.s3_server import Fault, FaultyProxy, faulty_proxy, moto_server

pytestmark = pytest.mark.slow
TWO_PROMPTS = ('{"prompt": "a kite over the dunes", "steps": 3}\n'
               '{"prompt": "rain on a tin roof", "steps": 3}\n')


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultyProxy, str, str]]:
    """(proxy, proxy URL, moto URL): boto3 in the pipeline talks to the proxy, assertions to moto directly."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as moto_url, \
            faulty_proxy(moto_url) as (proxy, proxy_url):
        yield proxy, proxy_url, moto_url


@pytest.fixture
def bucket(s3_server: tuple[FaultyProxy, str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and the environment that puts the pipeline's storage in it (through the proxy)."""
    proxy, proxy_url, moto_url = s3_server
    proxy.faults.clear()
    proxy.requests.clear()
    name = f"sora-{uuid.uuid4().hex[:12]}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "SORA_ASSETS_STORAGE": "s3", "SORA_ASSETS_S3_BUCKET": name,
                       "SORA_ASSETS_S3_PREFIX": "studio", "SORA_ASSETS_S3_ENDPOINT_URL": proxy_url,
                       "SORA_ASSETS_S3_MAX_ATTEMPTS": "4"}.items():
        monkeypatch.setenv(key, value)
    direct(moto_url).create_bucket(Bucket=name)
    return name


def direct(moto_url: str):  # noqa: ANN201 - a boto3 client
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def objects(moto_url: str, bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = direct(moto_url)
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def fresh_home(root: Path, model_dir: Path | None = None) -> Home:
    home = Home.from_env(root).ensure()
    if model_dir is not None:
        shutil.copytree(model_dir, home.default_model_path)
    return home


def render_batch(home: Home, name: str, text: str) -> list[str]:
    from sora_assets.services.runner import open_instance, run_shards, submit_file, tick_inbox

    batch = home.root.parent / name
    batch.write_text(text)
    submit_file(home, batch)
    instance = open_instance(home)
    keys = tick_inbox(home, instance).new_keys
    outcomes = run_shards(home, instance, keys)
    assert all(o.success for o in outcomes), outcomes
    return keys


def test_pipeline_on_s3_publishes_reuses_across_machines_and_reports(
        bucket: str, s3_server: tuple[FaultyProxy, str, str], tmp_path: Path, tiny_model_dir: Path) -> None:
    from sora_assets.resources.home import storage_resources

    proxy, _, moto_url = s3_server
    # S3 under load: the first upload of a clip and of a cache-index entry are refused with 503 SlowDown
    proxy.faults += [Fault("PUT", ".mp4", times=1), Fault("PUT", "/store/cache/", times=1)]
    machine_a = fresh_home(tmp_path / "machine-a", tiny_model_dir)
    first = render_batch(machine_a, "kites.jsonl", TWO_PROMPTS)

    assert [f.injected for f in proxy.faults] == [1, 1]
    refused = [(m, p) for m, p, status in proxy.requests if status == 503]
    for method, path in refused:  # each refused PUT was retried and then stored
        assert (method, path, 200) in proxy.requests
    stored = objects(moto_url, bucket, "studio/store/")
    clips = {k: v for k, v in stored.items() if k.endswith(".mp4")}
    assert len(clips) == 2
    for key, data in clips.items():  # whole objects only: each one's bytes hash to its own name
        assert hashlib.sha256(data).hexdigest() == Path(key).stem
        assert json.loads(stored[key.replace(".mp4", ".json")])["sha256"] == Path(key).stem
    index = [json.loads(v)["sha256"] for k, v in stored.items() if "/cache/" in k]
    assert sorted(index) == sorted(Path(k).stem for k in clips)
    assert f"studio/warehouse/cost_ledger/partition={first[0]}/published_clips.parquet" in \
        objects(moto_url, bucket, "studio/warehouse/cost_ledger/")
    assert objects(moto_url, bucket, "studio/checkpoints/") == {}  # cleared once the shard published

    # another machine (empty home, same bucket), same prompts under a new batch: every clip is a cache hit
    machine_b = fresh_home(tmp_path / "machine-b", tiny_model_dir)
    shutil.copytree(machine_a.keys, machine_b.keys, dirs_exist_ok=True)  # the fleet shares one signing secret
    second = render_batch(machine_b, "kites-again.jsonl", TWO_PROMPTS)
    ledger = storage_resources(machine_b)["warehouse"].read("cost_ledger", second[0])
    assert len(ledger) == 2 and ledger.cache_hit.all() and (ledger.gpu_seconds == 0).all()
    assert len([k for k in objects(moto_url, bucket, "studio/store/") if k.endswith(".mp4")]) == 2

    # a third machine that rendered nothing answers the reports from the bucket (sync fallback)
    reader = storage_resources(fresh_home(tmp_path / "analyst"))["warehouse"]
    by_batch = reader.query("SELECT batch_id, clips, rendered, cache_hits, gpu_seconds FROM v_cost_by_batch "
                            "ORDER BY cache_hits")
    assert list(by_batch.clips) == [2, 2]
    assert list(by_batch.rendered) == [2, 0] and list(by_batch.cache_hits) == [0, 2]
    assert by_batch.gpu_seconds.iloc[0] > 0 and by_batch.gpu_seconds.iloc[1] == 0


def test_a_render_killed_on_one_machine_resumes_from_its_s3_checkpoint_on_another(
        bucket: str, s3_server: tuple[FaultyProxy, str, str], tmp_path: Path, tiny_model_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sora_assets.core.render.checkpoints import ClipCheckpoints
    from sora_assets.core.render.failpoints import ENV_VAR, FailpointError
    from sora_assets.resources.home import storage_resources
    from sora_assets.resources.video_model import VideoModelResource
    from sora_assets_tests.resources.test_video_model import spec_for

    _, _, moto_url = s3_server
    model = VideoModelResource(model_path=str(tiny_model_dir), checkpoint_every=4)
    spec = spec_for(model, steps=10, seed=77)
    uninterrupted = model.render(spec).frames

    machine_a, machine_b = fresh_home(tmp_path / "a"), fresh_home(tmp_path / "b")
    mirror = storage_resources(machine_a)["store"].checkpoint_mirror()
    monkeypatch.setenv(ENV_VAR, "generate.after_step=6:raise")
    with pytest.raises(FailpointError):
        model.render(spec, "clip-1", ClipCheckpoints(machine_a.checkpoints, "shard-s000", "clip-1", mirror=mirror),
                     failpoint_dir=machine_a.failpoints)
    monkeypatch.delenv(ENV_VAR)
    assert sorted(objects(moto_url, bucket, "studio/checkpoints/")) == [
        "studio/checkpoints/shard-s000/clip-1/step-00004.json", "studio/checkpoints/shard-s000/clip-1/step-00004.pt"]
    shutil.rmtree(machine_a.root)  # the first machine is gone

    on_b = ClipCheckpoints(machine_b.checkpoints, "shard-s000", "clip-1",
                           mirror=storage_resources(machine_b)["store"].checkpoint_mirror())
    resumed = model.render(spec, "clip-1", on_b)
    assert resumed.resumed_from_step == 4 and resumed.steps_computed == 6
    assert np.array_equal(resumed.frames, uninterrupted)  # bit-identical to the render that never stopped
    on_b.clear()
    assert objects(moto_url, bucket, "studio/checkpoints/") == {}


def test_publish_retries_transient_errors_and_never_indexes_a_clip_it_could_not_finish(
        bucket: str, s3_server: tuple[FaultyProxy, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from sora_assets.resources.home import storage_resources

    proxy, _, moto_url = s3_server
    monkeypatch.setenv("SORA_ASSETS_S3_MAX_ATTEMPTS", "2")  # botocore counts retries: 3 tries in all
    store = storage_resources(fresh_home(tmp_path / "home"))["store"]
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()

    # the index PUT fails more often than the client retries: publishing fails as a whole
    proxy.faults.append(Fault("PUT", "/store/cache/", times=10))
    with pytest.raises(ClientError, match="SlowDown"):
        store.publish(source, "k" * 64, {"clip_id": "c1"})
    assert proxy.faults[0].injected == 3
    assert not store.has("k" * 64) and store.lookup("k" * 64) is None  # no index: a miss, re-rendered
    stored = objects(moto_url, bucket, "studio/store/")
    assert not [k for k in stored if "/cache/" in k]
    assert hashlib.sha256(stored[f"studio/store/{sha[:2]}/{sha}.mp4"]).hexdigest() == sha  # whole, never partial

    # the server recovers: the next attempt completes the publish without uploading the object again
    proxy.faults.clear()
    proxy.faults.append(Fault("PUT", ".json", times=2))  # two transient failures, retried by botocore
    proxy.requests.clear()
    published = store.publish(source, "k" * 64, {"clip_id": "c1"})
    assert published.sha256 == sha and store.lookup("k" * 64).sha256 == sha
    assert not [p for m, p, _ in proxy.requests if m == "PUT" and p.endswith(".mp4")]
    assert proxy.faults[0].injected == 2


def test_warehouse_sync_drops_replaced_partitions_and_httpfs_points_views_at_the_bucket(
        bucket: str, tmp_path: Path) -> None:
    from sora_assets.resources.home import storage_resources

    writer = storage_resources(fresh_home(tmp_path / "writer"))["warehouse"]
    reader = storage_resources(fresh_home(tmp_path / "reader"))["warehouse"]
    row = {"partition_key": "b-s000", "batch_id": "b", "row": 1, "stage": "validation", "reason": "too wide"}
    writer.write("rejections", "b-s000", "validated_prompts", [row, {**row, "row": 2}])
    assert len(reader.read("rejections")) == 2
    writer.write("rejections", "b-s000", "validated_prompts", [row])  # re-materialised: replaced, not appended
    assert len(reader.read("rejections")) == 1
    writer.blobs().delete(writer.blobs().keys("rejections/partition=b-s000/"))
    assert reader.sync("rejections") == {"objects": 0, "fetched": 0, "removed": 1}
    assert len(reader.read("rejections")) == 0

    httpfs = writer.model_copy(update={"read_mode": "httpfs", "duckdb_endpoint": "minio.internal:9000",
                                       "duckdb_use_ssl": False})
    views = "\n".join(httpfs._view_sql())
    assert f"read_parquet('s3://{bucket}/studio/warehouse/clips/*/*.parquet'" in views
    secret = httpfs.httpfs_settings()[-1]
    assert "ENDPOINT 'minio.internal:9000'" in secret and "USE_SSL false" in secret


def test_an_s3_input_image_is_fetched_scanned_and_hashed_before_any_render(bucket: str, s3_server, tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    import io

    from dagster import DagsterInstance, materialize
    from PIL import Image

    from sora_assets.core.intake.inbox import ingest_file
    from sora_assets.defs.intake import prompt_shards
    from sora_assets.defs.validation import validated_prompts
    from sora_assets.resources.home import default_resources

    _, _, moto_url = s3_server
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    picture = io.BytesIO()
    Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                              np.full((64, 64), 90, np.uint8)], axis=-1)).save(picture, format="PNG")
    direct(moto_url).put_object(Bucket=bucket, Key="inputs/boat.png", Body=picture.getvalue())
    home = fresh_home(tmp_path / "home", tiny_model_dir)
    rows = [{"prompt": "a boat at sea", "image": f"s3://{bucket}/inputs/boat.png", "steps": 3},
            {"prompt": "a missing boat", "image": f"s3://{bucket}/inputs/absent.png", "steps": 3}]
    (home.inbox / "s3-images.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (key,) = ingest_file(home, home.inbox / "s3-images.jsonl", 64).shard_keys
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("shards", [key])
        resources = default_resources(home)
        result = materialize([prompt_shards, validated_prompts], partition_key=key, instance=instance,
                             resources=resources)
    (accepted,) = result.output_for_node("validated_prompts")
    assert accepted["spec"]["conditioning"] == f"image:{hashlib.sha256(picture.getvalue()).hexdigest()}"
    assert accepted["spec"]["model_id"] == "tiny-wan-i2v"
    local = home.inputs / "s3" / bucket / "inputs" / "boat.png"
    assert local.read_bytes() == picture.getvalue()  # the local copy generation and signing will read
    rejected = resources["warehouse"].query("SELECT row, stage, reason FROM rejections")
    assert list(rejected.row) == [2] and rejected.stage[0] == "input_scan" and "cannot read" in rejected.reason[0]
