"""Alarm signals against thresholds, and fire/clear transitions without duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sora_assets.core.ops.alarms import (
    FIRING,
    RESOLVED,
    Thresholds,
    block_rate_signals,
    nan_rate_signal,
    queue_wait_signal,
    slack_signal,
    transitions,
    webhook_payload,
    worker_failure_signals,
)

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
T = Thresholds()


def test_nan_rate_fires_above_half_a_percent() -> None:
    assert not nan_rate_signal(200, 1, T).breached  # exactly 0.5%: not above
    signal = nan_rate_signal(199, 1, T)
    assert signal.breached and signal.value == pytest.approx(1 / 199)
    assert not nan_rate_signal(0, 0, T).breached


def test_paid_queue_wait_p95() -> None:
    # 10 waits: nine of 60 s and one of 7200 s: p95 at rank 8.55 -> 60 + 0.55 * 7140 = 3987 s > 1800
    signal = queue_wait_signal([60.0] * 9 + [7200.0], T)
    assert signal.value == pytest.approx(3987.0) and signal.breached
    assert not queue_wait_signal([60.0] * 10, T).breached


def test_slack_names_the_late_shards() -> None:
    signal = slack_signal({"a": 3600.0, "b": -120.0}, T)
    assert signal.breached and signal.value == -120.0 and "b" in signal.message
    assert not slack_signal({"a": 1.0}, T).breached and not slack_signal({}, T).breached


def test_block_rate_needs_a_jump_and_enough_samples() -> None:
    baseline = {"nudity": (2, 200)}  # 1%: limit max(3%, 3%) = 3%
    (jump,) = block_rate_signals({"nudity": (3, 40)}, baseline, T)  # 7.5%
    assert jump.breached and jump.threshold == pytest.approx(0.03) and jump.subject == "nudity"
    (small,) = block_rate_signals({"nudity": (1, 5)}, baseline, T)  # 20% but only 5 scanned
    assert not small.breached
    (steady,) = block_rate_signals({"nudity": (1, 40)}, baseline, T)  # 2.5% < 3%
    assert not steady.breached
    (new,) = block_rate_signals({"black": (1, 40)}, {}, T)  # no baseline: limit +2 points; 2.5% > 2%
    assert new.breached and new.threshold == pytest.approx(0.02)


def test_worker_failures_per_worker() -> None:
    signals = {s.subject: s for s in worker_failure_signals({"gpu-a/cuda:0": 3, "gpu-b/cuda:0": 2}, T)}
    assert signals["gpu-a/cuda:0"].breached and not signals["gpu-b/cuda:0"].breached


def test_transitions_fire_once_then_clear() -> None:
    breached = nan_rate_signal(10, 1, T)
    fire, resolve = transitions("nan_abort_rate", [breached], [], NOW)
    assert resolve == [] and len(fire) == 1
    alert = fire[0]
    assert (alert["status"], alert["severity"], alert["runbook"]) == (FIRING, "critical", "nan-abort-rate")
    assert alert["alert_id"] == "nan-abort-rate-20261121t230000"
    again, none = transitions("nan_abort_rate", [breached], [alert], NOW + timedelta(minutes=1))
    assert again == [] and none == []  # already open: no duplicate
    fire, resolve = transitions("nan_abort_rate", [nan_rate_signal(1000, 1, T)], [alert], NOW + timedelta(hours=1))
    assert fire == [] and [r["status"] for r in resolve] == [RESOLVED]
    assert resolve[0]["alert_id"] == alert["alert_id"] and resolve[0]["resolved_at"] == NOW + timedelta(hours=1)


def test_transitions_resolve_a_subject_whose_signal_is_gone() -> None:
    fire, _ = transitions("worker_failures", worker_failure_signals({"w1": 4}, T), [], NOW)
    _, resolve = transitions("worker_failures", [], fire, NOW + timedelta(hours=2))
    assert [r["signal"] for r in resolve] == ["worker_failures:w1"]


def test_webhook_payload_links_the_runbook_section() -> None:
    (alert,), _ = transitions("paid_queue_wait", [queue_wait_signal([4000.0], T)], [], NOW)
    payload = webhook_payload(alert, "docs/RUNBOOK.md")
    assert payload["runbook"] == "docs/RUNBOOK.md#paid-queue-wait"
    assert (payload["value"], payload["threshold"], payload["severity"]) == (4000.0, 1800.0, "critical")
    assert payload["fired_at"] == NOW.isoformat()
