"""Batch files: parsing, batch ids, partition keys and shard planning."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sora_assets.core.intake.batch_files import (
    MAX_PARTITION_KEY,
    PARSE_ERROR_COLUMN,
    PARTITION_KEY_RE,
    ROW_COLUMN,
    BatchFileError,
    batch_format,
    batch_id_for,
    batch_id_of_key,
    parse_batch,
    plan_shards,
    read_batch_file,
    rows_from_shard_file,
    rows_to_jsonl,
    shard_key,
    slugify,
    tier_of,
)

ID_CHARS = re.compile(r"^[a-z0-9-]+$")


def _jsonl(*rows: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# --- formats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt"), [
    ("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("b.CSV", "csv"), ("c.parquet", "parquet"),
])
def test_batch_format_by_suffix_case_insensitive(tmp_path, name, fmt):
    assert batch_format(tmp_path / name) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a", "a.json", "a.csv.gz"])
def test_batch_format_rejects_unsupported(tmp_path, name):
    with pytest.raises(BatchFileError):
        batch_format(tmp_path / name)


# --- batch ids and partition keys ------------------------------------------------------------------

def test_batch_id_stable_for_identical_bytes():
    content = _jsonl({"prompt": "a cat"})
    assert batch_id_for("prompts.jsonl", content) == batch_id_for("prompts.jsonl", bytes(content))


def test_batch_id_differs_for_different_bytes():
    a = batch_id_for("prompts.jsonl", _jsonl({"prompt": "a cat"}))
    b = batch_id_for("prompts.jsonl", _jsonl({"prompt": "a dog"}))
    assert a != b
    # a one-byte difference is enough
    assert batch_id_for("p.csv", b"prompt\nabc\n") != batch_id_for("p.csv", b"prompt\nabd\n")


def test_batch_id_is_name_slug_plus_content_hash():
    content = b"prompt\na cat\n"
    batch_id = batch_id_for("My Batch.csv", content)
    digest = hashlib.sha256(content).hexdigest()
    slug, _, tail = batch_id.rpartition("-")
    assert slug == "my-batch"  # suffix dropped, lowercased, space -> dash
    assert len(tail) >= 8 and digest.startswith(tail)


def test_batch_id_same_bytes_other_name_shares_hash_only():
    content = b"prompt\na cat\n"
    a, b = batch_id_for("alpha.csv", content), batch_id_for("beta.csv", content)
    assert a != b
    assert a.rpartition("-")[2] == b.rpartition("-")[2]


HOSTILE_NAMES = [
    "x" * 500 + ".jsonl",
    "日本語のバッチ.jsonl",
    "prompts, final v2 (copy).csv",
    "../../etc/passwd.jsonl",
    "..\\..\\windows\\evil.csv",
    "  spaced   out  .csv",
    ".csv",
    "....parquet",
    "UPPER Case.PARQUET",
    "emoji 🎬🎬 batch.ndjson",
    "-leading-and-trailing-.csv",
    "a" + "é" * 200 + ".jsonl",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_batch_id_and_shard_keys_are_valid_partition_keys(name):
    batch_id = batch_id_for(name, b'{"prompt": "a cat"}\n')
    assert ID_CHARS.match(batch_id), batch_id
    assert not batch_id.startswith("-") and "--" not in batch_id
    for index in (0, 7, 999):
        key = shard_key(batch_id, index)
        assert len(key) <= MAX_PARTITION_KEY
        assert PARTITION_KEY_RE.match(key)
        assert batch_id_of_key(key) == batch_id


def test_batch_id_of_key_survives_dash_s_inside_the_name():
    batch_id = batch_id_for("my-s-file-s001.csv", b"prompt\nx\n")
    assert "-s" in batch_id
    assert batch_id_of_key(shard_key(batch_id, 12)) == batch_id


def test_shard_key_format_and_rejection():
    assert shard_key("abc-123", 4) == "abc-123-s004"
    with pytest.raises(ValueError):
        shard_key("Bad-Id", 0)
    with pytest.raises(ValueError):
        shard_key("x" * 60, 0)  # 65 characters


def test_slugify():
    assert slugify("Hello, World!", 40) == "hello-world"
    assert slugify("!!!", 40) == "batch"
    assert slugify("abc---def", 5) == "abc-d"
    assert slugify("abcd-efgh", 5) == "abcd"  # cut on a dash never leaves a trailing dash


# --- JSONL -----------------------------------------------------------------------------------------

def test_jsonl_bad_line_keeps_good_rows_and_marks_bad_one():
    content = b'{"prompt": "a cat", "seed": 1}\n{not json\n[1, 2]\n{"prompt": "a dog"}\n'
    frame = parse_batch(content, "jsonl")
    assert list(frame[ROW_COLUMN]) == [1, 2, 3, 4]
    assert list(frame.columns)[0] == ROW_COLUMN
    records = frame.to_dict(orient="records")
    assert records[0]["prompt"] == "a cat" and records[0]["seed"] == 1
    assert records[0][PARSE_ERROR_COLUMN] is None
    assert records[1][PARSE_ERROR_COLUMN].startswith("line 2")
    assert "invalid JSON" in records[1][PARSE_ERROR_COLUMN]
    assert records[1]["prompt"] is None
    assert records[2][PARSE_ERROR_COLUMN].startswith("line 3") and "list" in records[2][PARSE_ERROR_COLUMN]
    assert records[3]["prompt"] == "a dog" and records[3][PARSE_ERROR_COLUMN] is None


def test_jsonl_blank_lines_are_skipped_but_line_numbers_kept():
    content = b'{"prompt": "a"}\n\n   \n{oops\n'
    frame = parse_batch(content, "jsonl")
    assert len(frame) == 2
    assert frame.iloc[1][PARSE_ERROR_COLUMN].startswith("line 4")


def test_jsonl_missing_values_become_none_and_dtype_is_object():
    frame = parse_batch(b'{"prompt": "a", "seed": 3}\n{"prompt": "b", "seed": null}\n{"prompt": "c"}\n',
                        "jsonl")
    assert all(frame[c].dtype == object for c in frame.columns if c != ROW_COLUMN)
    assert list(frame["seed"]) == [3, None, None]


def test_jsonl_with_bom_and_crlf():
    content = "\ufeff" + '{"prompt": "a cat"}\r\n{"prompt": "a dog"}\r\n'
    frame = parse_batch(content.encode("utf-8"), "jsonl")
    assert list(frame["prompt"]) == ["a cat", "a dog"]


def test_jsonl_all_lines_bad_raises():
    with pytest.raises(BatchFileError):
        parse_batch(b"{nope\n[1]\n42\n", "jsonl")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("content", [b"", b"   \n\n  \t"])
def test_empty_file_raises(fmt, content):
    with pytest.raises(BatchFileError):
        parse_batch(content, fmt)


def test_missing_prompt_column_raises_for_every_format():
    with pytest.raises(BatchFileError, match="prompt"):
        parse_batch(_jsonl({"text": "a cat"}), "jsonl")
    with pytest.raises(BatchFileError, match="prompt"):
        parse_batch(b"text,seed\na cat,1\n", "csv")
    with pytest.raises(BatchFileError, match="prompt"):
        parse_batch(_parquet(pa.table({"text": ["a cat"]})), "parquet")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_non_utf8_text_raises(fmt):
    text = '{"prompt": "café crème"}\n' if fmt == "jsonl" else "prompt\ncafé crème\n"
    with pytest.raises(BatchFileError, match="UTF-8"):
        parse_batch(text.encode("latin-1"), fmt)


def test_header_only_csv_raises():
    with pytest.raises(BatchFileError):
        parse_batch(b"prompt,seed\n", "csv")


# --- CSV -------------------------------------------------------------------------------------------

def test_csv_quoted_newline_and_bom():
    text = '\ufeffprompt,seed,tier\n"a cat\non a mat, purring",7,paid\nsecond,,\n'
    frame = parse_batch(text.encode("utf-8"), "csv")
    assert "prompt" in frame.columns  # BOM not glued to the first header
    assert len(frame) == 2
    first, second = frame.to_dict(orient="records")
    assert first["prompt"] == "a cat\non a mat, purring"
    assert first["seed"] == "7"  # CSV cells stay text; coercion happens in validation
    assert first["tier"] == "paid"
    assert second["seed"] is None and second["tier"] is None  # empty cell == not given
    assert list(frame[ROW_COLUMN]) == [1, 2]


def test_csv_keeps_na_like_text():
    frame = parse_batch(b"prompt,id\nNA,NULL\n", "csv")
    assert frame.iloc[0]["prompt"] == "NA" and frame.iloc[0]["id"] == "NULL"


def test_csv_row_with_extra_field_is_a_parse_error_and_good_rows_proceed():
    frame = parse_batch(b"prompt,seed\na,1\nb,2,3\n", "csv")
    assert frame.loc[0, "prompt"] == "a" and frame.loc[0, "seed"] == "1"
    assert "line 3: expected 2 fields, got 3" in frame.loc[1, PARSE_ERROR_COLUMN]


def test_csv_where_no_row_matches_the_header_is_a_bad_file():
    with pytest.raises(BatchFileError, match="no row could be read"):
        parse_batch(b"prompt,seed\na,1,x\nb,2,3\n", "csv")


# --- Parquet ---------------------------------------------------------------------------------------

def test_parquet_round_trip_keeps_types_and_drops_nulls():
    table = pa.table({"prompt": ["a cat", "a dog"], "seed": pa.array([5, None], pa.int64()),
                      "guidance_scale": [4.5, 6.0]})
    frame = parse_batch(_parquet(table), "parquet")
    records = frame.to_dict(orient="records")
    assert records[0]["seed"] == 5
    assert records[1]["seed"] is None
    assert records[1]["guidance_scale"] == 6.0
    assert list(frame[ROW_COLUMN]) == [1, 2]


@pytest.mark.parametrize("content", [
    b"PAR1this is not really parquet at allPAR1",
    b"just some bytes",
])
def test_corrupt_parquet_raises(content):
    with pytest.raises(BatchFileError, match="Parquet"):
        parse_batch(content, "parquet")


def test_truncated_parquet_raises():
    data = _parquet(pa.table({"prompt": ["a cat"] * 100}))
    with pytest.raises(BatchFileError):
        parse_batch(data[: len(data) // 2], "parquet")


def test_read_batch_file(tmp_path):
    path = tmp_path / "batch.CSV"
    path.write_bytes(b"prompt\na cat\n")
    frame = read_batch_file(path)
    assert list(frame["prompt"]) == ["a cat"]
    other = tmp_path / "batch.txt"
    other.write_bytes(b"prompt\na cat\n")
    with pytest.raises(BatchFileError):
        read_batch_file(other)


# --- tiers and shards ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "tier"), [
    (None, "free"), ("", "free"), ("   ", "free"), (" PAID ", "paid"), ("Free", "free"), ("gold", "gold"),
])
def test_tier_of(value, tier):
    assert tier_of(value) == tier


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows).astype(object)
    frame = frame.where(pd.notna(frame), None)
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return frame


def test_plan_shards_worked_example():
    frame = _frame([
        {"prompt": "1", "tier": "free"},
        {"prompt": "2", "tier": "paid"},
        {"prompt": "3", "tier": "free", "shot_group": "A"},
        {"prompt": "4", "tier": "free", "shot_group": "A"},
        {"prompt": "5", "tier": "PAID"},
        {"prompt": "6"},
    ])
    shards = plan_shards(frame, shard_size=2)
    # paid first; free units [1], [3, 4], [6] cannot pair up without exceeding 2 rows
    assert [(s.index, s.tier, s.row_numbers) for s in shards] == [
        (0, "paid", [2, 5]), (1, "free", [1]), (2, "free", [3, 4]), (3, "free", [6]),
    ]


def test_plan_shards_packs_up_to_shard_size():
    frame = _frame([{"prompt": str(i)} for i in range(7)])
    shards = plan_shards(frame, shard_size=3)
    assert [s.row_numbers for s in shards] == [[1, 2, 3], [4, 5, 6], [7]]


def test_plan_shards_never_splits_an_oversized_shot_group():
    frame = _frame([{"prompt": "a"}] + [{"prompt": str(i), "shot_group": "big"} for i in range(4)])
    shards = plan_shards(frame, shard_size=2)
    assert [s.row_numbers for s in shards] == [[1], [2, 3, 4, 5]]


def test_plan_shards_keeps_a_mixed_tier_shot_group_together_under_its_anchors_tier():
    frame = _frame([{"prompt": "a", "shot_group": "g", "tier": "free"},
                    {"prompt": "b", "shot_group": "g", "tier": "paid", "anchor": "yes"},
                    {"prompt": "c", "tier": "free"}])
    shards = plan_shards(frame, 5)
    assert [(s.tier, s.row_numbers) for s in shards] == [("paid", [1, 2]), ("free", [3])]


def test_plan_shards_interleaved_shot_group_stays_together():
    frame = _frame([
        {"prompt": "a", "shot_group": "g"}, {"prompt": "b"}, {"prompt": "c", "shot_group": "g"},
    ])
    shards = plan_shards(frame, shard_size=10)
    assert len(shards) == 1
    assert sorted(shards[0].row_numbers) == [1, 2, 3]
    assert shards[0].row_numbers.index(1) + 1 == shards[0].row_numbers.index(3)


def test_plan_shards_unknown_tier_after_known_tiers():
    frame = _frame([{"prompt": "a", "tier": "gold"}, {"prompt": "b"}, {"prompt": "c", "tier": "paid"}])
    assert [s.tier for s in plan_shards(frame, 5)] == ["paid", "free", "gold"]


@pytest.mark.parametrize("size", [0, -1])
def test_plan_shards_rejects_bad_size(size):
    with pytest.raises(ValueError):
        plan_shards(_frame([{"prompt": "a"}]), size)


@pytest.mark.parametrize("seed", range(25))
def test_plan_shards_invariants_on_random_batches(seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(rng.randint(1, 60)):
        row = {"prompt": "p", "tier": rng.choice([None, "free", "paid", " Paid", ""])}
        if rng.random() < 0.5:
            row["shot_group"] = rng.choice(["a", "b", "c", "d"])
        rows.append(row)
    frame = _frame(rows)
    shard_size = rng.randint(1, 8)
    shards = plan_shards(frame, shard_size)

    assert [s.index for s in shards] == list(range(len(shards)))
    all_rows = [r for s in shards for r in s.row_numbers]
    assert sorted(all_rows) == list(range(1, len(rows) + 1))  # every row exactly once

    group_tier: dict[str, str] = {}  # a shot group rides with its first row's tier (no anchors here)
    for r in rows:
        if r.get("shot_group"):
            group_tier.setdefault(r["shot_group"], tier_of(r["tier"]))
    tier_by_row = {i + 1: group_tier[r["shot_group"]] if r.get("shot_group") else tier_of(r["tier"])
                   for i, r in enumerate(rows)}
    for shard in shards:
        assert {tier_by_row[r] for r in shard.row_numbers} == {shard.tier}  # one tier per shard

    shard_of_row = {r: s.index for s in shards for r in s.row_numbers}
    groups: dict[str, set[int]] = {}
    for i, r in enumerate(rows):
        if r.get("shot_group"):
            groups.setdefault(r["shot_group"], set()).add(shard_of_row[i + 1])
    assert all(len(indexes) == 1 for indexes in groups.values())  # shot groups never split

    for shard in shards:
        if len(shard.row_numbers) > shard_size:  # only a single oversized shot group may exceed
            members = [rows[r - 1].get("shot_group") for r in shard.row_numbers]
            assert len(set(members)) == 1 and members[0] is not None

    tiers_in_order = [s.tier for s in shards]
    if "paid" in tiers_in_order and "free" in tiers_in_order:
        last_paid = max(i for i, t in enumerate(tiers_in_order) if t == "paid")
        first_free = min(i for i, t in enumerate(tiers_in_order) if t == "free")
        assert last_paid < first_free


# --- shard files -----------------------------------------------------------------------------------

def test_rows_jsonl_round_trip():
    records = [{"b": 1, "a": "x", "when": datetime(2024, 1, 2, tzinfo=UTC)}, {"a": "y", "b": None}]
    content = rows_to_jsonl(records)
    lines = content.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].index('"a"') < lines[0].index('"b"')  # sorted keys
    frame = rows_from_shard_file(content)
    back = frame.to_dict(orient="records")
    assert back[0]["a"] == "x" and back[0]["b"] == 1
    assert back[0]["when"] == str(datetime(2024, 1, 2, tzinfo=UTC))
    assert back[1]["b"] is None and back[1]["when"] is None
