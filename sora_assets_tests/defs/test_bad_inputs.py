"""The bad-input corpus through the real sensor: it never crashes, quarantines what is unusable with a
reason, lets good rows of a mixed file proceed with the bad ones rejected, and writes only inside the home."""

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sora_assets.core.intake.batch_files import BatchFileError, parse_batch, rows_from_shard_file
from sora_assets.core.intake.inbox import ingest_file
from sora_assets.core.intake.prompt_rules import ModelProfile
from sora_assets.core.intake.validation import validate_rows
from sora_assets.core.storage.home import Home
from sora_assets.services.runner import tick_inbox
from sora_assets_tests.bad_inputs import BadInput, corpus

CORPUS = corpus()


def test_the_corpus_is_large_and_covers_every_format() -> None:
    assert len(CORPUS) >= 50
    assert {Path(i.name).suffix for i in CORPUS} >= {".jsonl", ".csv", ".parquet", ".txt", ""}
    assert len({i.name for i in CORPUS}) == len(CORPUS)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("item", CORPUS, ids=[i.name[:40] for i in CORPUS])
def test_the_sensor_handles_every_bad_file(item: BadInput, tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    (home.inbox / item.name).write_bytes(item.data)
    outside_before = files_under(tmp_path) - files_under(home.root)
    with DagsterInstance.ephemeral() as instance:
        tick = tick_inbox(home, instance)  # must not raise
    assert files_under(tmp_path) - files_under(home.root) == outside_before  # nothing written outside the home
    reasons = [json.loads(p.read_text()) for p in (home.quarantine / "files").glob("*.reason.json")]
    batches = sorted(home.batches.glob("*/batch.json"))

    if item.expect == "ignored":
        assert [p.name for p in home.inbox.iterdir()] == [item.name] and not reasons and not batches
        return
    assert not list(home.inbox.iterdir())  # consumed either way
    if item.expect == "quarantine":
        assert len(reasons) == 1 and reasons[0]["reason"].strip() and not batches and not tick.new_keys
        assert reasons[0]["source_name"] == item.name
        return
    assert not reasons and len(batches) == 1 and tick.new_keys
    accepted, rejected = 0, []
    for shard in sorted((batches[0].parent / "shards").glob("*.jsonl")):  # validation runs per shard
        outcome = validate_rows(rows_from_shard_file(shard.read_bytes()), "b", ModelProfile())
        accepted += len(outcome.accepted)
        rejected += outcome.rejected
    assert all(r.reason.strip() and r.stage for r in rejected)
    if item.expect == "partial":
        assert accepted >= 1 and rejected
    elif item.expect == "rejected":
        assert accepted == 0 and rejected
    else:
        assert accepted >= 1 and not rejected


FORMATS = st.sampled_from(["jsonl", "csv", "parquet"])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
ROWS = st.lists(st.dictionaries(st.sampled_from(["prompt", "seed", "width", "steps", "tier", "id", "x"]),
                                JSON_VALUES, max_size=5), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=400), fmt=FORMATS)
def test_fuzz_random_bytes_parse_or_fail_with_a_reason(content: bytes, fmt: str) -> None:
    try:
        frame = parse_batch(content, fmt)
    except BatchFileError as error:
        assert str(error).strip()
        return
    assert "prompt" in frame.columns


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, junk=st.lists(st.text(max_size=30), max_size=3))
def test_fuzz_jsonl_rows_never_crash_parsing_or_validation(rows: list[dict], junk: list[str]) -> None:
    lines = [json.dumps(r) for r in rows] + junk
    try:
        frame = parse_batch("\n".join(lines).encode(), "jsonl")
    except BatchFileError:
        return
    outcome = validate_rows(frame, "fuzz", ModelProfile())
    assert len(outcome.accepted) + len(outcome.rejected) == len(frame)
    assert all(r.reason for r in outcome.rejected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(name=st.text(min_size=1, max_size=60).filter(lambda n: "/" not in n and "\x00" not in n
                                                    and n not in (".", "..")),
       content=st.binary(max_size=200))
def test_fuzz_any_file_name_and_content_is_ingested_or_quarantined_inside_the_home(
        tmp_path_factory: pytest.TempPathFactory, name: str, content: bytes) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    home = Home.from_env(root / "home").ensure()
    source = home.inbox / (name + ".jsonl")
    try:
        source.write_bytes(content)
    except OSError:  # a name the file system refuses (e.g. too long) never reaches the inbox
        return
    result = ingest_file(home, source, 64)
    assert result.status in ("registered", "duplicate", "quarantined")
    if result.status == "quarantined":
        assert result.reason
    assert files_under(root) == files_under(home.root)
