"""Orchestration-side services: planning, observability, evaluation, backfill, recovery, calibration, runner."""
