"""The render queue's failure policy, apart from the model that renders and the files it writes.

Groups of clips (one denoising batch each) are rendered in order by the function it is given. On
non-finite latents the affected clips become dead letters (the same seed would fail again) and their
healthy batch-mates are queued again alone; an out-of-memory error splits a group into single clips;
any other error is classified (`core/render/failures.classify`): a permanent one stops the queue with every
clip still waiting, a transient one propagates for the step's retry policy (resuming from checkpoints).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from sora_assets.core.render.failures import Verdict, classify, is_out_of_memory


class NanError(Protocol):
    step: int
    clip_ids: list[str]
    gpu_seconds: float


class Job(Protocol):
    clip_id: str


J = TypeVar("J", bound=Job)


class PermanentRenderError(RuntimeError):
    """No retry can help (a broken model folder): the clips still waiting are listed for dead-lettering."""

    def __init__(self, verdict: Verdict, error: BaseException, waiting: list[Any]):
        super().__init__(f"{verdict.reason}: {error}")
        self.verdict, self.error, self.waiting = verdict, error, waiting


class RenderHandler(Protocol[J]):
    """What the queue's owner does with each outcome (write files, update records, log)."""

    def rendered(self, job: J, result: Any, started: datetime) -> None: ...

    def non_finite(self, job: J, error: Any, group_size: int, started: datetime) -> None: ...

    def alone(self, job: J) -> J: ...  # a healthy batch-mate of a NaN clip, rebuilt to render on its own

    def failed(self, group: Sequence[J], error: BaseException, verdict: Verdict) -> None: ...


class RenderQueue(Generic[J]):
    """Render groups with `render(group) -> results`, applying the policy above; `passthrough` errors (a
    fenced step) are re-raised untouched, `nan_error` is the model's non-finite-latents exception type."""

    def __init__(self, render: Callable[[list[J]], Sequence[Any]], handler: RenderHandler[J],
                 nan_error: type[BaseException], passthrough: tuple[type[BaseException], ...] = ()):
        self.render, self.handler, self.nan_error, self.passthrough = render, handler, nan_error, passthrough
        self.queue: deque[list[J]] = deque()

    def run(self, groups: Sequence[list[J]], later: Sequence[J] = ()) -> None:
        """Render `groups` to the end; `later` are jobs queued after these (listed as waiting if it stops)."""
        self.queue.extend(groups)
        while self.queue:
            self._next(self.queue.popleft(), later)

    def _next(self, group: list[J], later: Sequence[J]) -> None:
        started = datetime.now(UTC)
        try:
            results = self.render(group)
        except self.passthrough:
            raise
        except self.nan_error as error:
            bad = set(getattr(error, "clip_ids", []))
            for job in group:
                if job.clip_id in bad:
                    self.handler.non_finite(job, error, len(group), started)
                else:
                    self.queue.append([self.handler.alone(job)])
            return
        except Exception as error:  # noqa: BLE001 - classified: split, stop permanently, or retry the step
            self._failed(group, error, later)  # raises unless the group was split
            return
        for job, result in zip(group, results, strict=True):
            self.handler.rendered(job, result, started)

    def _failed(self, group: list[J], error: Exception, later: Sequence[J]) -> None:
        verdict = classify(error)
        self.handler.failed(group, error, verdict)
        if is_out_of_memory(error) and len(group) > 1:
            self.queue.extendleft(reversed([[job] for job in group]))
            return
        if not verdict.retryable:
            waiting = group + [job for g in self.queue for job in g] + [j for j in later if j not in group]
            raise PermanentRenderError(verdict, error, waiting) from error
        raise error  # transient: the step's retry policy retries with backoff, resuming from checkpoints
