"""The pipeline home and path confinement."""

from __future__ import annotations

import pytest

from sora_assets.core.storage.home import DEFAULT_HOME, HOME_ENV, Home, OutsideHomeError


@pytest.fixture
def home(tmp_path) -> Home:
    return Home.from_env(tmp_path / "home").ensure()


def test_from_env_override_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Home.from_env("rel/home").root == (tmp_path / "rel" / "home").resolve()
    assert Home.from_env("rel/home").root.is_absolute()


def test_from_env_reads_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "from-env"))
    assert Home.from_env().root == (tmp_path / "from-env").resolve()
    # an explicit override wins over the environment
    assert Home.from_env(tmp_path / "explicit").root == (tmp_path / "explicit").resolve()


def test_from_env_default(tmp_path, monkeypatch):
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert Home.from_env().root == (tmp_path / DEFAULT_HOME).resolve()


def test_from_env_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Home.from_env("~/pipeline").root == (tmp_path / "pipeline").resolve()


def test_ensure_creates_folders(home):
    for folder in (home.inbox, home.batches, home.quarantine, home.store, home.checkpoints, home.keys,
                   home.models, home.warehouse, home.work):
        assert folder.is_dir()
        assert folder.parent == home.root
    assert home.ensure() is home  # idempotent


def test_paths_live_under_root(home):
    for path in (home.warehouse_db, home.dagster_io, home.dagster_home, home.default_model_path):
        assert home.root in path.parents


def test_confine_accepts_root_and_paths_inside(home):
    assert home.confine(home.root) == home.root
    assert home.confine(home.store / "ab" / "clip.mp4") == home.store / "ab" / "clip.mp4"
    assert home.confine(home.store / "x" / ".." / "y") == home.store / "y"
    assert home.confine(str(home.inbox / "batch.csv")) == home.inbox / "batch.csv"


@pytest.mark.parametrize("relative", ["..", "../outside", "store/../../outside", "inbox/../../../etc/passwd"])
def test_confine_rejects_dotdot_escapes(home, relative):
    with pytest.raises(OutsideHomeError):
        home.confine(home.root / relative)


def test_confine_rejects_absolute_outside_paths(home, tmp_path):
    with pytest.raises(OutsideHomeError):
        home.confine("/etc/passwd")
    with pytest.raises(OutsideHomeError):
        home.confine(tmp_path)


def test_confine_rejects_sibling_with_common_prefix(home):
    sibling = home.root.parent / (home.root.name + "-evil") / "f.txt"
    with pytest.raises(OutsideHomeError):
        home.confine(sibling)


def test_confine_rejects_symlink_escape(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = home.store / "link"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideHomeError):
        home.confine(link / "secret.txt")


def test_outside_home_error_is_a_value_error():
    assert issubclass(OutsideHomeError, ValueError)
