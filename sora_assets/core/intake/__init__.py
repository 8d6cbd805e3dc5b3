"""Intake: batch files in, rows parsed, typed, checked and shaped for a model."""
