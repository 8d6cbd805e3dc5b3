"""The lock and pyproject.toml agree: every declared dependency is pinned, within its range, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, its hashes), read the way pip reads the file (continuation lines joined)."""
    text = (REPO / "requirements.lock").read_text().replace("\\\n", " ")
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        name, version = spec.strip().split("==")
        found[canonicalize_name(name)] = (version, [o.strip() for o in options])
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name == "torch":  # installed first from the local CPU wheel; never in the lock
            assert name not in pins
            continue
        assert name in pins, f"{name} is declared but not locked: run bash scripts/lock.sh"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{name}=={pins[name][0]} is outside {requirement.specifier}: regenerate the lock")


def test_every_pin_is_exact_and_hashed_and_no_cuda_build_sneaks_in() -> None:
    pins = locked()
    assert len(pins) > 100
    for name, (version, hashes) in pins.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!\-]*", version), (name, version)
        assert hashes and all(h.startswith("sha256:") for h in hashes), name
    assert not [n for n in pins if n.startswith("nvidia-") or n == "triton"]
