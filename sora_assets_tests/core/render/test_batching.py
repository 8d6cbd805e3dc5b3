from hypothesis import given
from hypothesis import strategies as st

from sora_assets.core.render.denoise_batches import group_by_shape


def test_groups_equal_shapes_up_to_the_batch_size_in_first_seen_order() -> None:
    items = [("a", 1), ("b", 2), ("c", 1), ("d", 1), ("e", 2)]
    groups = group_by_shape(items, shape=lambda i: i[1], batch_size=2)
    assert [[name for name, _ in g] for g in groups] == [["a", "c"], ["b", "e"], ["d"]]


def test_batch_size_one_and_alone_items_render_singly() -> None:
    items = list(range(5))
    assert group_by_shape(items, shape=lambda _: 0, batch_size=1) == [[0], [1], [2], [3], [4]]
    assert group_by_shape(items, shape=lambda _: 0, batch_size=4, alone=lambda i: i == 2) == [[0, 1, 3, 4], [2]]


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40), st.integers(1, 6))
def test_every_item_lands_in_exactly_one_homogeneous_batch(items: list, batch_size: int) -> None:
    indexed = list(enumerate(items))
    groups = group_by_shape(indexed, shape=lambda i: i[1][0], batch_size=batch_size, alone=lambda i: i[1][1])
    flat = [item for group in groups for item in group]
    assert sorted(flat) == indexed
    for group in groups:
        assert 1 <= len(group) <= batch_size
        assert len({item[1][0] for item in group}) == 1
        if any(item[1][1] for item in group):
            assert len(group) == 1
