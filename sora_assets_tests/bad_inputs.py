"""A corpus of malformed batch files, generated (nothing binary in git): name, bytes, expected outcome.

`quarantine`: nothing usable, the file goes to quarantine/files/ with a reason.
`partial`: some rows render, the others land in `rejections` with a reason.
`rejected`: the file registers, but every row is rejected with a reason (nothing to render).
`accepted`: odd but valid (names, encodings, metadata): every row proceeds.
`ignored`: a dot-file is an upload in progress; it stays in the inbox untouched.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

GOOD = {"prompt": "a red fox running through a forest", "steps": 3}
GOOD_LINE = json.dumps(GOOD)


@dataclass(frozen=True)
class BadInput:
    name: str
    data: bytes
    expect: str  # quarantine | partial | rejected


def _jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _parquet(frame_dict: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(frame_dict), sink)
    return sink.getvalue()


def corpus() -> list[BadInput]:
    items = [
        # JSONL
        BadInput("invalid-json-line.jsonl", _jsonl(GOOD_LINE, "{not json", GOOD_LINE), "partial"),
        BadInput("all-invalid-json.jsonl", _jsonl("{", "[1,2", "nope"), "quarantine"),
        BadInput("empty.jsonl", b"", "quarantine"),
        BadInput("only-newlines.jsonl", b"\n\n\n", "quarantine"),
        BadInput("whitespace.jsonl", b"   \t  \n  ", "quarantine"),
        BadInput("json-array-line.jsonl", _jsonl(GOOD_LINE, "[1, 2, 3]"), "partial"),
        BadInput("json-scalar-line.jsonl", _jsonl(GOOD_LINE, "42", '"a string"'), "partial"),
        BadInput("null-line.jsonl", _jsonl(GOOD_LINE, "null"), "partial"),
        BadInput("no-prompt-column.jsonl", _jsonl('{"text": "a cat"}', '{"text": "a dog"}'), "quarantine"),
        BadInput("prompt-is-number.jsonl", _jsonl(GOOD_LINE, '{"prompt": 12345}'), "partial"),
        BadInput("prompt-is-list.jsonl", _jsonl(GOOD_LINE, '{"prompt": ["a", "b"]}'), "partial"),
        BadInput("prompt-is-null.jsonl", _jsonl(GOOD_LINE, '{"prompt": null}'), "partial"),
        BadInput("prompt-empty.jsonl", _jsonl(GOOD_LINE, '{"prompt": ""}'), "partial"),
        BadInput("prompt-too-short.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a"}'), "partial"),
        BadInput("one-mb-prompt.jsonl", _jsonl(GOOD_LINE, json.dumps({"prompt": "fox " * 262_144})), "partial"),
        BadInput("width-string.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "width": "wide"}'),
                 "partial"),
        BadInput("width-negative.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "width": -64}'),
                 "partial"),
        BadInput("width-huge.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "width": 1e300}'), "partial"),
        BadInput("frames-float.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "num_frames": 9.5}'),
                 "partial"),
        BadInput("seed-overflow.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "seed": 1' + "0" * 40 + "}"),
                 "partial"),
        BadInput("seed-negative.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "seed": -5}'), "partial"),
        BadInput("steps-bool.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "steps": true}'), "partial"),
        BadInput("steps-zero.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "steps": 0}'), "partial"),
        BadInput("tier-unknown.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "tier": "gold"}'), "partial"),
        BadInput("fps-zero.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "fps": 0}'), "partial"),
        BadInput("guidance-nan.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "guidance_scale": NaN}'),
                 "partial"),
        BadInput("guidance-inf.jsonl", _jsonl(GOOD_LINE, '{"prompt": "a cat on a wall", "guidance_scale": 1e999}'),
                 "partial"),
        BadInput("nested-object.jsonl", _jsonl(GOOD_LINE, '{"prompt": {"text": "a cat"}}'), "partial"),
        BadInput("duplicate-ids.jsonl", _jsonl('{"prompt": "a cat on a wall", "id": "x"}',
                                               '{"prompt": "a dog on a wall", "id": "x"}'), "partial"),
        BadInput("id-path-traversal.jsonl", _jsonl('{"prompt": "a cat on a wall", "id": "../../etc/passwd"}',
                                                   '{"prompt": "a cat", "shot_group": "../../x"}'), "accepted"),
        BadInput("bom.jsonl", b"\xef\xbb\xbf" + _jsonl(GOOD_LINE, GOOD_LINE), "accepted"),
        BadInput("crlf.jsonl", (GOOD_LINE + "\r\n" + '{"prompt": 1}' + "\r\n").encode(), "partial"),
        BadInput("latin1.jsonl", '{"prompt": "caf\u00e9 at night"}\n'.encode("latin-1"), "quarantine"),
        BadInput("utf16.jsonl", _jsonl(GOOD_LINE).decode().encode("utf-16"), "quarantine"),
        BadInput("nul-bytes.jsonl", _jsonl(GOOD_LINE) + b"\x00\x00\x00\n", "partial"),
        BadInput("binary-garbage.jsonl", bytes(range(256)) * 40, "quarantine"),
        BadInput("truncated-last-line.jsonl", _jsonl(GOOD_LINE)[:-1] + b'\n{"prompt": "a cat on', "partial"),
        BadInput("control-chars.jsonl", _jsonl(GOOD_LINE, json.dumps({"prompt": "a cat\u0007\u001b[31m on a wall"})),
                 "accepted"),
        BadInput("zero-width-blocked.jsonl", _jsonl(GOOD_LINE, json.dumps({"prompt": "g\u200bo\u200br\u200be and "
                                                                                     "blood everywhere"})),
                 "partial"),
        # CSV
        BadInput("header-only.csv", b"prompt,seed\n", "quarantine"),
        BadInput("no-header.csv", b"", "quarantine"),
        BadInput("quoted-newline.csv", b'prompt,seed\n"a cat\non a wall",1\n"a dog by the sea",2\n', "accepted"),
        BadInput("ragged-row.csv", b"prompt,seed\na cat on a wall,1\na dog,2,extra,fields\n", "partial"),
        BadInput("unclosed-quote.csv", b'prompt,seed\n"a cat on a wall,1\n', "quarantine"),
        BadInput("semicolon.csv", b"prompt;seed\na cat on a wall;1\n", "quarantine"),
        BadInput("bom.csv", b"\xef\xbb\xbfprompt,seed\na cat on a wall,1\n", "accepted"),
        BadInput("crlf.csv", b"prompt,seed\r\na cat on a wall,1\r\nx,notanumber\r\n", "partial"),
        BadInput("binary.csv", b"\x89PNG\r\n\x1a\n" + bytes(200), "quarantine"),
        BadInput("formula-injection.csv", b'prompt,seed\n"=cmd|\' /C calc\'!A0",1\na cat on a wall,2\n', "accepted"),
        # Parquet
        BadInput("wrong-schema.parquet", _parquet({"text": ["a cat"], "n": [1]}), "quarantine"),
        BadInput("prompt-ints.parquet", _parquet({"prompt": [1, 2]}), "rejected"),
        BadInput("truncated.parquet", _parquet({"prompt": ["a cat on a wall"]})[:-40], "quarantine"),
        BadInput("not-parquet.parquet", b"PAR1 but not really", "quarantine"),
        BadInput("mixed-nulls.parquet", _parquet({"prompt": ["a cat on a wall", None], "seed": [1, None]}), "partial"),
        # names
        BadInput("my batch, final (2).jsonl", _jsonl(GOOD_LINE), "accepted"),
        BadInput("\u00fcn\u00efc\u00f8d\u00e9 \u6279\u6b21.jsonl", _jsonl(GOOD_LINE), "accepted"),
        BadInput("..jsonl", _jsonl(GOOD_LINE), "ignored"),
        BadInput("-rf --no-preserve-root.jsonl", _jsonl(GOOD_LINE), "accepted"),
        BadInput("x" * 200 + ".jsonl", _jsonl(GOOD_LINE), "accepted"),
        BadInput("batch.txt", _jsonl(GOOD_LINE), "quarantine"),
        BadInput("no-extension", _jsonl(GOOD_LINE), "quarantine"),
    ]
    return items
