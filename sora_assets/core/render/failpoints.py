"""Failpoints for tests and chaos drills: `SORA_ASSETS_FAILPOINTS`, off unless set.

Syntax: entries separated by `,` or `;`, each `site[=value]:action[*times]` with action `kill`
(SIGKILL the process, as a lost GPU node would), `killparent` (SIGKILL the process's parent: for a step of
the multiprocess executor, its run coordinator, leaving the step an orphan), `raise` (a FailpointError, as a
crashed step would), `oom` (an out-of-memory error) or `hang` (block for an hour, as a wedged GPU would: what
ends it is run monitoring's max runtime or a crash drill's kill), e.g. `generate.after_step=48:kill,sign.before:raise`.

A failpoint fires once (or `times` times): each firing creates a marker file (O_EXCL, so exactly one
process wins each) in the given folder, and later hits — the retry, the re-execution, the backfill —
pass. `generate.after_step=13:kill*3` kills a step and both its retries, so the run fails and a
backfill has to finish the shard. Without a marker folder, counts are per process. Firing never
changes what a successful run produces.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SORA_ASSETS_FAILPOINTS"
ACTIONS = ("kill", "killparent", "raise", "oom", "hang")
HANG_S = 3600.0
SITES = ("intake.before_register", "validate.before", "generate.after_step", "scan.before", "sign.before",
         "publish.before_rename", "publish.before_ledger")
_ENTRY = re.compile(r"^(?P<site>[a-z_]+\.[a-z_]+)(?:=(?P<value>[^:]+))?:(?P<action>[a-z]+)(?:\*(?P<times>\d+))?$")
_FIRED_IN_PROCESS: dict[str, int] = {}


class FailpointError(RuntimeError):
    """Raised by a `raise` failpoint."""


class SimulatedOutOfMemoryError(FailpointError):
    """Raised by an `oom` failpoint: handled like torch.cuda.OutOfMemoryError (smaller batch, then retry)."""


@dataclass(frozen=True)
class Failpoint:
    site: str
    value: str | None
    action: str
    times: int = 1

    @property
    def name(self) -> str:
        return f"{self.site}={self.value}" if self.value is not None else self.site


def parse_failpoints(raw: str | None) -> list[Failpoint]:
    """Parse the environment value; a typo is an error, never a silently disarmed drill."""
    points = []
    for entry in re.split(r"[,;]", raw or ""):
        entry = entry.strip()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if not match:
            raise ValueError(f"{ENV_VAR}: cannot parse {entry!r}; expected site[=value]:kill|raise[*times]")
        site, value, action = match["site"], match["value"], match["action"]
        if site not in SITES:
            raise ValueError(f"{ENV_VAR}: unknown site {site!r}; known: {', '.join(SITES)}")
        if action not in ACTIONS:
            raise ValueError(f"{ENV_VAR}: unknown action {action!r} in {entry!r}; use {', '.join(ACTIONS)}")
        if site == "generate.after_step" and not (value or "").isdigit():
            raise ValueError(f"{ENV_VAR}: {entry!r} needs a step number, e.g. generate.after_step=48:kill")
        times = int(match["times"] or 1)
        if times < 1:
            raise ValueError(f"{ENV_VAR}: {entry!r} must fire at least once")
        points.append(Failpoint(site, value, action, times))
    return points


def _claim(point: Failpoint, marker_dir: Path | None) -> bool:
    """True for exactly `times` hits of this failpoint (per marker folder, or per process without one)."""
    key = f"{point.name}-{point.action}"
    if marker_dir is None:
        fired = _FIRED_IN_PROCESS.get(key, 0)
        if fired >= point.times:
            return False
        _FIRED_IN_PROCESS[key] = fired + 1
        return True
    marker_dir.mkdir(parents=True, exist_ok=True)
    base = re.sub(r"[^a-z0-9_.=-]", "_", key)
    for firing in range(1, point.times + 1):
        marker = marker_dir / (base if firing == 1 else f"{base}.{firing}")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"pid={os.getpid()}\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True
    return False


def hit(site: str, value: object = None, marker_dir: Path | None = None) -> None:
    """Call at a failpoint site; does nothing unless the environment arms this site (and value)."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return
    for point in parse_failpoints(raw):
        if point.site != site or (point.value is not None and point.value != str(value)):
            continue
        if not _claim(point, marker_dir):
            continue
        if point.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if point.action == "killparent":
            os.kill(os.getppid(), signal.SIGKILL)
            return  # this process lives on, orphaned: what it does next is what the drill observes
        if point.action == "hang":
            import time

            time.sleep(HANG_S)  # the drill's subject: a process that stops making progress
            return
        if point.action == "oom":
            raise SimulatedOutOfMemoryError(f"CUDA out of memory (failpoint {point.name}:oom)")
        raise FailpointError(f"failpoint {point.name}:{point.action} fired")
