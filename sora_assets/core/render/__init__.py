"""Render: what a clip is (spec, cache key), how it is made, checked and encoded."""
