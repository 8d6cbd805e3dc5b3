"""Warehouse: row builders, table schemas and report SQL."""
