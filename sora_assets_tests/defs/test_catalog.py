import pytest

from sora_assets.defs.catalog import GROUPS, OWNERS, owners_of


def test_every_group_has_owners_in_dagsters_owner_format() -> None:
    assert GROUPS == ["intake", "planning", "generation", "safety", "provenance", "warehouse"]
    assert set(OWNERS) == set(GROUPS)
    for group in GROUPS:
        assert owners_of(group) and all(o.startswith("team:") or "@" in o for o in owners_of(group))
    with pytest.raises(KeyError):
        owners_of("publishing")  # not a group of the design any more
