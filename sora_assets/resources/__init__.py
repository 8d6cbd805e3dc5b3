"""Dagster resources, one per external system, swappable by config."""
