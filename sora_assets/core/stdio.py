"""Keep stdout a clean document when a native library writes to it.

`contextlib.redirect_stdout` only swaps Python's `sys.stdout`; a C library such as HiGHS (1.16+ prints a
banner from `Highs()` before any option can be set) writes to file descriptor 1 directly, so the only
reliable guard is to point fd 1 elsewhere for the duration of the call. Hand-written because no
maintained library in the lock does fd-level redirection (wurlitzer would, but adds a dependency
for ten lines).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Route everything written to fd 1 (Python's and C's) to fd 2 while the block runs."""
    with _LOCK:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            yield
        finally:
            try:
                sys.stdout.flush()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
