import os
import subprocess
import sys
from pathlib import Path

import pytest

from sora_assets.core.render import failpoints
from sora_assets.core.render.failpoints import ENV_VAR, Failpoint, FailpointError, hit, parse_failpoints


def test_parses_several_entries_with_either_separator() -> None:
    assert parse_failpoints("generate.after_step=48:kill; sign.before:raise,publish.before_rename:kill") == [
        Failpoint("generate.after_step", "48", "kill"), Failpoint("sign.before", None, "raise"),
        Failpoint("publish.before_rename", None, "kill")]
    assert parse_failpoints("") == [] and parse_failpoints(None) == []


@pytest.mark.parametrize("raw, message", [
    ("generate.after_step=48", "cannot parse"),
    ("generate.after_step=48:explode", "unknown action"),
    ("render.after_step=4:kill", "unknown site"),
    ("generate.after_step=x:raise", "needs a step number"),
    ("generate.after_step:raise", "needs a step number"),
])
def test_a_malformed_failpoint_is_an_error_not_a_silent_no_op(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_failpoints(raw)


def test_hit_does_nothing_unless_armed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    hit("generate.after_step", 3, tmp_path)
    monkeypatch.setenv(ENV_VAR, "generate.after_step=4:raise")
    hit("generate.after_step", 3, tmp_path)  # other step
    hit("sign.before", None, tmp_path)  # other site
    assert not any(tmp_path.iterdir())


def test_a_failpoint_fires_once_per_marker_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, "generate.after_step=4:raise")
    with pytest.raises(FailpointError, match="generate.after_step=4"):
        hit("generate.after_step", 4, tmp_path)
    hit("generate.after_step", 4, tmp_path)  # the retry passes
    other = tmp_path / "other-home"
    with pytest.raises(FailpointError):
        hit("generate.after_step", 4, other)


def test_a_count_fires_that_many_times_then_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, "generate.after_step=13:raise*3")
    assert parse_failpoints("generate.after_step=13:raise*3")[0].times == 3
    for _ in range(3):
        with pytest.raises(FailpointError):
            hit("generate.after_step", 13, tmp_path)
    hit("generate.after_step", 13, tmp_path)
    assert len(list(tmp_path.iterdir())) == 3
    with pytest.raises(ValueError, match="at least once"):
        parse_failpoints("sign.before:raise*0")


def test_without_a_marker_folder_it_fires_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failpoints, "_FIRED_IN_PROCESS", {})
    monkeypatch.setenv(ENV_VAR, "sign.before:raise")
    with pytest.raises(FailpointError):
        hit("sign.before")
    hit("sign.before")


def test_kill_sends_a_real_sigkill(tmp_path: Path) -> None:
    code = ("from pathlib import Path; from sora_assets.core.render.failpoints import hit; "
            f"hit('generate.after_step', 7, Path({str(tmp_path)!r})); print('survived')")
    env = {**os.environ, ENV_VAR: "generate.after_step=7:kill"}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == -9 and "survived" not in first.stdout
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "survived" in second.stdout  # fired once: the rerun goes through
