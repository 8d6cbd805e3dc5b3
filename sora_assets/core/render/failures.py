"""Which failures are worth retrying: transient ones get Dagster's retry with backoff, permanent ones
fail at once (`Failure(allow_retries=False)`) and their clips go to the dead-letter table.

Classified by type and message only, so this module needs neither torch nor Dagster.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

TRANSIENT = "transient"
PERMANENT = "permanent"
_TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ENOSPC, errno.ETIMEDOUT, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.EPIPE, errno.ENOLCK, errno.ESTALE}


class ModelLoadError(RuntimeError):
    """The model folder cannot be loaded (missing component, corrupt weights): retrying cannot help."""


@dataclass(frozen=True)
class Verdict:
    kind: str  # transient | permanent
    reason: str  # a short label for the dead-letter table and metrics

    @property
    def retryable(self) -> bool:
        return self.kind == TRANSIENT


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, a CPU allocator failure, or MemoryError."""
    text = str(error).lower()
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text)


def classify(error: BaseException) -> Verdict:
    if isinstance(error, ModelLoadError):
        return Verdict(PERMANENT, "model_unavailable")
    if is_out_of_memory(error):
        return Verdict(TRANSIENT, "out_of_memory")
    if isinstance(error, TimeoutError | ConnectionError | InterruptedError):
        return Verdict(TRANSIENT, "io_timeout")
    if isinstance(error, OSError):
        if error.errno == errno.ENOSPC:
            return Verdict(TRANSIENT, "disk_full")
        if error.errno in _TRANSIENT_ERRNOS:
            return Verdict(TRANSIENT, "io_error")
        return Verdict(PERMANENT, "os_error")
    if type(error).__name__ == "FailpointError":
        return Verdict(TRANSIENT, "failpoint")  # a chaos drill's simulated crash
    if isinstance(error, ValueError | TypeError | KeyError | AttributeError | NotImplementedError):
        return Verdict(PERMANENT, "invalid_input_or_bug")
    return Verdict(TRANSIENT, "unknown")  # unknown: retried, but only as often as the policy allows
