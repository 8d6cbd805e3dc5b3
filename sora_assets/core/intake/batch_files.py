"""Batch files: parse JSONL/CSV/Parquet, derive the batch id, split into single-tier shards."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from sora_assets.core.intake.prompt_rules import coerce_value

SUPPORTED_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
ROW_COLUMN = "_row"  # 1-based position of the row in its source file
PARSE_ERROR_COLUMN = "_parse_error"
MAX_FILE_BYTES = 256 * 1024 * 1024
PARTITION_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_PARTITION_KEY = 64
DEFAULT_TIER = "free"
DEFAULT_ACCOUNT = "default"  # rows without an `account` share one fair-share bucket
MAX_ACCOUNT_CHARS = 63  # it travels as a Dagster run tag value
TIER_ORDER = {"paid": 0, "free": 1}  # paid shards first: they are the higher priority


class BatchFileError(ValueError):
    """The whole file is unusable (unreadable, wrong format, no prompt column)."""


def batch_format(path: Path) -> str:
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise BatchFileError(
            f"unsupported file type {path.suffix or '(none)'!r}; expected one of "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return fmt


def slugify(text: str, max_len: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:max_len].strip("-")
    return slug or "batch"


def batch_id_for(file_name: str, content: bytes) -> str:
    """Name slug plus a short content hash: resubmitting the same bytes gives the same id."""
    stem = Path(file_name).name
    for suffix in SUPPORTED_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    digest = hashlib.sha256(content).hexdigest()[:10]
    # key = <batch_id>-sNNN must stay within 64 characters
    return f"{slugify(stem, 40)}-{digest}"


def shard_key(batch_id: str, index: int) -> str:
    key = f"{batch_id}-s{index:03d}"
    if not PARTITION_KEY_RE.match(key) or len(key) > MAX_PARTITION_KEY:
        raise ValueError(f"invalid partition key {key!r}")
    return key


def batch_id_of_key(partition_key: str) -> str:
    return partition_key.rsplit("-s", 1)[0]


def _rows_from_jsonl(content: bytes) -> list[dict[str, Any]]:
    text = _decode_text(content)
    rows: list[dict[str, Any]] = []
    # split on newlines only: str.splitlines() also breaks on U+2028/U+2029/U+0085, which JSON allows raw
    for line_no, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append({PARSE_ERROR_COLUMN: f"line {line_no}: invalid JSON ({exc.msg})"})
            continue
        if not isinstance(value, dict):
            rows.append({PARSE_ERROR_COLUMN: f"line {line_no}: expected a JSON object, got "
                                             f"{type(value).__name__}"})
            continue
        rows.append(_user_row(value))
    return rows


def _user_row(row: dict[str, Any]) -> dict[str, Any]:
    """Our bookkeeping columns cannot be set from a file: `_row` arrives as `user_row`, and so on."""
    for reserved in (ROW_COLUMN, PARSE_ERROR_COLUMN):
        if reserved in row:
            row[f"user{reserved}"] = row.pop(reserved)
    return row


def _decode_text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"not UTF-8 text (byte {exc.start})") from exc


def _rows_from_csv(content: bytes) -> list[dict[str, Any]]:
    """The stdlib reader, not pandas: a row whose field count differs from the header must become a
    parse error with a reason, where pandas would silently shift or drop fields."""
    reader = csv.reader(io.StringIO(_decode_text(content), newline=""))
    try:
        header = next(reader)
        records = [(reader.line_num, fields) for fields in reader]
    except StopIteration:
        raise BatchFileError("CSV has no header row") from None
    except csv.Error as exc:
        raise BatchFileError(f"unreadable CSV: {exc}") from exc
    rows: list[dict[str, Any]] = []
    for line_no, fields in records:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            rows.append({PARSE_ERROR_COLUMN: f"line {line_no}: expected {len(header)} fields, got {len(fields)} "
                                             "(quote fields that contain commas)"})
            continue
        # empty CSV cells mean "not given", like an absent JSON key
        rows.append(_user_row({k: v for k, v in zip(header, fields, strict=True) if v != ""}))
    return rows


def _rows_from_parquet(content: bytes) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(io.BytesIO(content))
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise BatchFileError(f"unreadable Parquet: {exc}") from exc
    rows = table.to_pylist()
    return [_user_row({k: v for k, v in row.items() if v is not None}) for row in rows]


def parse_batch(content: bytes, fmt: str) -> pd.DataFrame:
    """Rows as an object-typed DataFrame with `_row`; malformed rows carry `_parse_error`."""
    if not content.strip():
        raise BatchFileError("file is empty")
    if len(content) > MAX_FILE_BYTES:
        raise BatchFileError(f"file is larger than {MAX_FILE_BYTES} bytes")
    reader = {"jsonl": _rows_from_jsonl, "csv": _rows_from_csv, "parquet": _rows_from_parquet}[fmt]
    rows = reader(content)
    if not rows:
        raise BatchFileError("file has no rows")
    if all(PARSE_ERROR_COLUMN in row for row in rows):
        raise BatchFileError(f"no row could be read ({rows[0][PARSE_ERROR_COLUMN]})")
    columns = {key for row in rows for key in row}
    if "prompt" not in columns:
        raise BatchFileError("no 'prompt' column")
    frame = _object_frame(rows)
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return frame


def _object_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as Python objects column by column: ints with gaps must not turn into floats."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object) for c in columns})


def read_batch_file(path: Path) -> pd.DataFrame:
    return parse_batch(path.read_bytes(), batch_format(path))


def tier_of(value: Any) -> str:
    """Tier used for grouping; invalid tiers are rejected later by validation."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIER
    return str(value).strip().lower()


def account_of(value: Any) -> str:
    """The fair-share account of a row: its `account` field trimmed, or the default bucket."""
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return DEFAULT_ACCOUNT
    return str(value).strip()[:MAX_ACCOUNT_CHARS]


@dataclass
class ShardPlan:
    index: int
    tier: str
    row_numbers: list[int] = field(default_factory=list)
    account: str = DEFAULT_ACCOUNT


def plan_shards(frame: pd.DataFrame, shard_size: int) -> list[ShardPlan]:
    """Group by tier (a shard has one priority), account (fair share counts shards per account) and shot
    group (never split), pack to `shard_size`."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    records = frame.to_dict(orient="records")
    # a shot group takes its anchor's tier (else its first row's): one group, one shard, one priority;
    # validation then rejects a shot that names a different tier
    group_tier: dict[str, tuple[str, str]] = {}  # shot group -> (tier, account) of its anchor
    for record in records:
        shot_group = record.get("shot_group")
        if shot_group not in (None, ""):
            is_anchor = coerce_value("anchor", record.get("anchor"))[0] is True
            if is_anchor or str(shot_group) not in group_tier:
                group_tier[str(shot_group)] = (tier_of(record.get("tier")), account_of(record.get("account")))
    groups: dict[tuple[str, str, str], list[int]] = {}
    for record in records:
        shot_group = record.get("shot_group")
        grouped = shot_group not in (None, "")
        tier, account = group_tier[str(shot_group)] if grouped else (tier_of(record.get("tier")),
                                                                     account_of(record.get("account")))
        unit = f"shot:{shot_group}" if grouped else f"row:{record[ROW_COLUMN]}"
        groups.setdefault((tier, account, unit), []).append(int(record[ROW_COLUMN]))

    shards: list[ShardPlan] = []
    buckets = sorted({(tier, account) for tier, account, _ in groups},
                     key=lambda b: (TIER_ORDER.get(b[0], 2), b[0], b[1] != DEFAULT_ACCOUNT, b[1]))
    for tier, account in buckets:
        current: ShardPlan | None = None
        units = [rows for (unit_tier, unit_account, _), rows in groups.items()
                 if (unit_tier, unit_account) == (tier, account)]
        units.sort(key=lambda rows: rows[0])
        for rows in units:
            if current is None or (current.row_numbers and len(current.row_numbers) + len(rows) > shard_size):
                current = ShardPlan(index=len(shards), tier=tier, account=account)
                shards.append(current)
            current.row_numbers.extend(rows)
    return shards


def rows_to_jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records).encode()


def shard_file_records(content: bytes) -> list[dict[str, Any]]:
    """A shard file's rows as dicts (a missing field reads as None through `.get`, as in the frame)."""
    return [json.loads(line) for line in content.decode().split("\n") if line.strip()]


def rows_from_shard_file(content: bytes) -> pd.DataFrame:
    return _object_frame(shard_file_records(content))
