"""Fencing: a step whose run is over, or whose run coordinator died, must not publish or write the books.

A SIGKILLed run coordinator leaves its step processes running (orphans). Dagster marks the run failed and,
with run monitoring, frees its pool slots, so a backfill renders the shard again while the orphan is still
going. The orphan checks two things before anything that outlives it (store objects, warehouse rows, the
step's output) and now and then while it renders: that its parent process is still the one that started it
(a reparented process lost its coordinator at once, no polling delay), and that its run is not finished.
"""

from __future__ import annotations

import os
import time

from dagster import AssetExecutionContext, DagsterRunStatus, Failure

OVER = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED, DagsterRunStatus.CANCELING, DagsterRunStatus.SUCCESS}


class RunFenced(Failure):
    """This step's run is over (or its coordinator is gone): stop without writing anything."""


class StepFence:
    """Created at the start of a step; `check` raises RunFenced once the step is an orphan."""

    def __init__(self, context: AssetExecutionContext, every_s: float = 2.0):
        self.context = context
        self.parent = os.getppid()
        self.every_s = every_s
        self._last = time.monotonic()

    def reason(self) -> str | None:
        """Why this step must stop, or None while its run is alive."""
        if os.getppid() != self.parent:
            return f"its run coordinator (pid {self.parent}) is gone"
        run = self.context.instance.get_run_by_id(self.context.run_id)
        if run is not None and run.status in OVER:
            return f"its run {self.context.run_id} is {run.status.value}"
        return None

    def check(self, before: str) -> None:
        self._last = time.monotonic()
        reason = self.reason()
        if reason is not None:
            self.context.log.error(f"fenced: {reason}; not {before}")
            raise RunFenced(f"fenced before {before}: {reason}", allow_retries=False,
                            metadata={"fenced_before": before, "reason": reason})

    def check_now_and_then(self, before: str) -> None:
        """`check`, at most every `every_s` (each check reads the run from the instance)."""
        if time.monotonic() - self._last >= self.every_s:
            self.check(before)
