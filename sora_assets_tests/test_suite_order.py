"""The suite's own schedule: the long files conftest.py runs first exist (a stale name would silently do nothing)."""

from __future__ import annotations

from sora_assets_tests.conftest import LONGEST_FIRST, REPO


def test_every_longest_first_file_exists_once() -> None:
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [path for path in LONGEST_FIRST if not (REPO / path).is_file()] == []
