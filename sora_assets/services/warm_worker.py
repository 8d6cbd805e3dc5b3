"""`sora-assets worker`: a long-lived process that executes the runs WarmWorkerRunLauncher queues (issue 21).

One worker per GPU. It pops run ids from its Redis list and executes each whole run here, with Dagster's own
run-worker body (the one `dagster api execute_run` uses), so the second and later runs find the video
pipeline, the pre-filter models and the Great Expectations context already loaded. A heartbeat thread keeps
`heartbeat_key(worker)` alive; run monitoring fails the runs of a worker whose key expired (a SIGKILLed or
powered-off worker), and `sora-assets backfill --failed` finishes their shards as for any dead run.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus

from sora_assets.run_launcher import (
    assigned_key,
    heartbeat_key,
    live_worker_ids,
    queue_key,
    redis_client,
    terminate_key,
)

HEARTBEAT_TTL_SECONDS = 20
TERMINATE_POLL_SECONDS = 0.5


@dataclass
class WorkerReport:
    worker_id: str
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def serving_pids(redis_url: str) -> set[int]:
    """Process ids of the live workers (from their heartbeat keys; the id is host-pid-suffix, the host may hold
    dashes): who is ready to take a run, for a drill or a benchmark that must not race a worker's start-up."""
    return {int(worker_id.rsplit("-", 2)[1]) for worker_id in live_worker_ids(redis_client(redis_url))}


class _Heartbeat(threading.Thread):
    """Refreshes the worker's key every TTL/4; the key outliving a dead worker by at most one TTL."""

    def __init__(self, client: Any, worker_id: str, ttl: int) -> None:
        super().__init__(name="warm-worker-heartbeat", daemon=True)
        self.client, self.key, self.ttl, self.stopped = client, heartbeat_key(worker_id), ttl, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.client.set(self.key, "1", ex=self.ttl)
            self.stopped.wait(self.ttl / 4)

    def stop(self) -> None:
        self.stopped.set()
        self.client.delete(self.key)


class _TerminateWatch(threading.Thread):
    """While one run executes: when the launcher sets its terminate flag, interrupt it as Dagster's own
    cancellation thread does (SIGINT to this process, which Dagster turns into an interrupted, failed run)."""

    def __init__(self, client: Any, run_id: str) -> None:
        super().__init__(name="warm-worker-terminate", daemon=True)
        self.client, self.run_id, self.done, self.fired = client, run_id, threading.Event(), False

    def run(self) -> None:
        while not self.done.wait(TERMINATE_POLL_SECONDS):
            if self.client.get(terminate_key(self.run_id)):
                self.fired = True
                os.kill(os.getpid(), signal.SIGINT)
                return


def execute_run(instance: DagsterInstance, run_id: str) -> None:
    """The whole run in this process, exactly as `dagster api execute_run` executes it in a fresh one."""
    from dagster._cli.api import _execute_run_command_body  # the run worker's own body (private API, pinned)
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


def _take(instance: DagsterInstance, client: Any, run_id: str, worker_id: str) -> bool:
    """Claim a popped run; a run canceled or finished while it waited is skipped (and a canceling one ends)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return False
    if run.status == DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, "Canceled before the warm worker started it.")
        return False
    if run.status not in (DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED):
        return False
    client.set(assigned_key(run_id), worker_id, ex=7 * 24 * 3600)
    return True


def _stop_on_sigterm(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # between runs SIGTERM stops the worker as Ctrl-C does (a run's own handler differs)


class _SignalTap:
    """Counts SIGINT/SIGTERM deliveries through a wakeup fd, whichever Python handler is installed (Dagster
    swaps in its own during a run), so the worker can tell an outside stop request from its own terminate."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.previous = signal.set_wakeup_fd(self.writer.fileno())

    def drain(self) -> int:
        count = 0
        try:
            while chunk := self.reader.recv(4096):
                count += sum(1 for byte in chunk if byte in (signal.SIGINT, signal.SIGTERM))
        except BlockingIOError:
            pass
        return count

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous)
        self.reader.close()
        self.writer.close()


def serve(instance: DagsterInstance, redis_url: str, queue: str = "gpu", max_runs: int | None = None,
          idle_exit_seconds: float | None = None, heartbeat_ttl: int = HEARTBEAT_TTL_SECONDS,
          on_run: Callable[[str], None] | None = None) -> WorkerReport:
    """Serve `queue` until interrupted, `max_runs` runs executed, or `idle_exit_seconds` without work.

    Call it on the main thread (Dagster's run body installs its interrupt handlers there)."""
    client = redis_client(redis_url)
    report = WorkerReport(new_worker_id())
    heartbeat = _Heartbeat(client, report.worker_id, heartbeat_ttl)
    previous_sigterm = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    tap = _SignalTap()
    heartbeat.start()
    idle = 0.0
    try:
        while max_runs is None or len(report.executed) < max_runs:
            item = client.brpop(queue_key(queue), timeout=1)
            if item is None:
                idle += 1
                if idle_exit_seconds is not None and idle >= idle_exit_seconds:
                    break
                continue
            idle, run_id = 0.0, item[1].decode()
            if not _take(instance, client, run_id, report.worker_id):
                report.skipped.append(run_id)
                continue
            tap.drain()
            own_interrupts = _execute_watched(instance, client, run_id)
            report.executed.append(run_id)
            if on_run:
                on_run(run_id)
            if tap.drain() > own_interrupts:
                break  # SIGINT/SIGTERM from outside during the run: it was interrupted; stop, as asked
    finally:
        heartbeat.stop()
        tap.close()
        signal.signal(signal.SIGTERM, previous_sigterm)
    return report


def _execute_watched(instance: DagsterInstance, client: Any, run_id: str) -> int:
    """Execute one run under its terminate watch; returns how many interrupts the watch itself sent."""
    watch = _TerminateWatch(client, run_id)
    watch.start()
    try:
        execute_run(instance, run_id)
    finally:
        watch.done.set()
        watch.join()
    return int(watch.fired)
