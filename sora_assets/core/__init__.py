"""Pure domain logic: no Dagster imports, unit-tested directly."""
