"""Stopping what the tests start: every server and worker runs in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from sora_assets.services.supervise import stop_group


def stop_process_group(process: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the process group (the process and its children), then SIGKILL what is left after `grace_s`:
    the same stop `sora-assets ui` uses for its own `dagster dev`."""
    stop_group(process, grace_s)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren...), from /proc: those that left its group too."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        parent = int(raw[raw.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def power_loss(process: subprocess.Popen) -> list[int]:
    """SIGKILL a process and every descendant at once, as a power cut would stop them; the pids killed."""
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return victims
