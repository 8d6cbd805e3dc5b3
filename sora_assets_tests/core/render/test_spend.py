"""The per-attempt spend journal: every attempt's GPU-seconds stay in the books (issue 19, no lost spend)."""

from pathlib import Path

from sora_assets.core.render.spend import SpendJournal, attempt_rows, billed_seconds, read_records, shard_folder


def test_a_killed_attempt_keeps_what_it_spent_and_the_bill_is_the_sum_of_attempts(tmp_path: Path) -> None:
    journal = SpendJournal(tmp_path, "shard-a", "clip-1", "run-1", "rendered_clips:retry0")
    killed = journal.begin("key-1")
    for step in range(1, 8):  # a SIGKILL after step 7: nothing runs after the last record
        killed.record(step, 0.1 * step)
    resumed = SpendJournal(tmp_path, "shard-a", "clip-1", "run-2").begin("key-1", resumed_from_step=5)
    resumed.record(20, 1.5, finished=True)
    SpendJournal(tmp_path, "shard-a", "clip-2").begin("key-2").record(3, 9.0)  # another clip: not billed here

    records = journal.records("key-1")
    assert [(r.run_id, r.steps_done, r.finished) for r in records] == [("run-1", 7, False), ("run-2", 20, True)]
    assert journal.total("key-1") == 0.7000000000000001 + 1.5
    assert journal.total("other-spec") == 0.0
    assert billed_seconds(journal.total("key-1"), 0.5) == journal.total("key-1")  # checkpoint knew only 1..5
    assert billed_seconds(0.0, 0.5) == 0.5  # journal on another machine: the checkpoint's figure stands


def test_render_attempt_rows_append_and_survive_a_lost_work_area(tmp_path: Path) -> None:
    journal = SpendJournal(tmp_path, "shard-a", "clip-1", "run-1")
    journal.begin("key-1").record(4, 0.4)
    first = attempt_rows(read_records(shard_folder(tmp_path, "shard-a")), "batch", [])
    assert len(first) == 1 and first[0]["batch_id"] == "batch" and first[0]["gpu_seconds"] == 0.4
    journal.begin("key-1").record(20, 2.0, finished=True)
    second = attempt_rows(read_records(shard_folder(tmp_path, "shard-a")), "batch", first)
    assert [r["steps_done"] for r in second] == [4, 20]  # oldest first; the earlier row not duplicated
    assert attempt_rows([], "batch", second) == second  # re-materialised after the work area went: rows kept


def test_an_unreadable_record_is_skipped_not_guessed(tmp_path: Path) -> None:
    journal = SpendJournal(tmp_path, "s", "c")
    journal.begin("k").record(2, 0.2)
    (journal.folder / "zz-garbage.json").write_text("{not json")
    assert [r.steps_done for r in journal.records()] == [2]


def test_steps_are_appended_lines_a_torn_last_line_is_ignored_and_the_final_record_replaces_them(
        tmp_path: Path) -> None:
    deferred: list[Path] = []
    journal = SpendJournal(tmp_path, "s", "c", deferred=deferred)
    attempt = journal.begin("k")
    for step in range(1, 5):
        attempt.record(step, 0.25 * step)
    with open(attempt.steps_path, "ab") as handle:  # a power cut tore the newest line
        handle.write(b"5 1.2")
    (record,) = journal.records("k")
    assert (record.steps_done, record.gpu_seconds, record.finished) == (4, 1.0, False)
    attempt.record(20, 5.0, finished=True)
    assert not attempt.steps_path.exists() and deferred == [attempt.path]  # fsync left to the work area
    (record,) = journal.records("k")
    assert (record.steps_done, record.gpu_seconds, record.finished) == (20, 5.0, True)
