"""Dagster definitions, one module per stage: assets, their checks and sensors."""
