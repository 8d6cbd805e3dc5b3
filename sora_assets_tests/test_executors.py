"""Executor choice by environment: in process (the default: no step processes), multiprocess, Celery; anything else
is an error."""

from __future__ import annotations

import pytest
from dagster import in_process_executor, multiprocess_executor

from sora_assets.executors import executor_from_env


def test_executor_is_chosen_by_environment() -> None:
    assert executor_from_env({}) is in_process_executor  # the default since issue 21: no step processes
    assert executor_from_env({"SORA_ASSETS_EXECUTOR": "multiprocess"}) is multiprocess_executor
    assert executor_from_env({"SORA_ASSETS_EXECUTOR": "in_process"}) is in_process_executor
    with pytest.raises(ValueError, match="in_process"):
        executor_from_env({"SORA_ASSETS_EXECUTOR": "threads"})
