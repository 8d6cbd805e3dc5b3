import errno

import pytest

from sora_assets.core.render.failpoints import FailpointError, SimulatedOutOfMemoryError
from sora_assets.core.render.failures import PERMANENT, TRANSIENT, ModelLoadError, classify, is_out_of_memory


class OutOfMemoryError(RuntimeError):
    """Same name as torch.cuda.OutOfMemoryError: classified without importing torch."""


@pytest.mark.parametrize("error, kind, reason", [
    (ModelLoadError("missing component 'vae'"), PERMANENT, "model_unavailable"),
    (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), TRANSIENT, "out_of_memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"), TRANSIENT,
     "out_of_memory"),
    (MemoryError(), TRANSIENT, "out_of_memory"),
    (SimulatedOutOfMemoryError("CUDA out of memory (failpoint)"), TRANSIENT, "out_of_memory"),
    (TimeoutError("read timed out"), TRANSIENT, "io_timeout"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), TRANSIENT, "io_timeout"),
    (OSError(errno.ENOSPC, "No space left on device"), TRANSIENT, "disk_full"),
    (OSError(errno.EIO, "I/O error"), TRANSIENT, "io_error"),
    (PermissionError(errno.EACCES, "denied"), PERMANENT, "os_error"),
    (FailpointError("failpoint fired"), TRANSIENT, "failpoint"),
    (ValueError("a render group needs one shape"), PERMANENT, "invalid_input_or_bug"),
    (KeyError("spec"), PERMANENT, "invalid_input_or_bug"),
    (RuntimeError("something odd"), TRANSIENT, "unknown"),
])
def test_failures_are_classified_by_whether_a_retry_can_help(error: BaseException, kind: str, reason: str) -> None:
    verdict = classify(error)
    assert (verdict.kind, verdict.reason) == (kind, reason)
    assert verdict.retryable is (kind == TRANSIENT)


def test_out_of_memory_detection_is_by_type_name_or_message() -> None:
    assert is_out_of_memory(OutOfMemoryError("x")) and not is_out_of_memory(RuntimeError("shape mismatch"))
