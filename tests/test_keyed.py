"""Keyed helpers (asyncstream._keyed), tested without a context (STYLE §1, §8)."""

from __future__ import annotations

import asyncio
import operator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asyncstream._keyed import (
    combine_pairs,
    combine_pairs_async,
    group_values,
    hash_partition,
    merge_dicts,
    merge_into,
    merge_into_async,
    reduce_mapped,
    reduce_pairs,
)

Pair = tuple[str, int]
pairs_st = st.lists(st.tuples(st.sampled_from("abcde"), st.integers(-5, 9)), max_size=40)


def _naive_group(pairs: list[Pair]) -> list[tuple[str, list[int]]]:
    keys = list(dict.fromkeys(k for k, _ in pairs))
    return [(k, [v for kk, v in pairs if kk == k]) for k in keys]


@given(pairs=pairs_st)
def test_group_values_is_arrival_order_per_key(pairs: list[Pair]) -> None:
    assert list(group_values(pairs).items()) == _naive_group(pairs)


@given(pairs=pairs_st)
def test_reduce_and_combine_are_a_fold_per_key_in_arrival_order(pairs: list[Pair]) -> None:
    # Folding with list concatenation shows the order the values were folded in.
    expected = dict(_naive_group(pairs))
    reduced = reduce_pairs([(k, [v]) for k, v in pairs], operator.add)
    assert list(reduced.items()) == list(expected.items())
    assert combine_pairs(pairs, lambda v: [v], lambda c, v: [*c, v]) == expected
    assert combine_pairs(pairs, None, operator.add) == {k: sum(vs) for k, vs in expected.items()}
    assert asyncio.run(combine_pairs_async(pairs, lambda v: [v], lambda c, v: [*c, v])) == expected


@given(pairs=pairs_st)
def test_the_mapped_reduce_equals_the_reduce_over_the_mapped_records(pairs: list[Pair]) -> None:
    # reduce_mapped takes the records before a map step made them pairs.
    records = [f"{k}={v}" for k, v in pairs]

    def to_pair(record: str) -> tuple[str, list[int]]:
        k, v = record.split("=")
        return k, [int(v)]

    mapped = list(map(to_pair, records))
    assert list(reduce_mapped(records, to_pair, operator.add).items()) == list(
        reduce_pairs(mapped, operator.add).items()
    )


def test_reduce_pairs_keeps_none_values_apart_from_missing_keys() -> None:
    assert reduce_pairs([("a", None), ("a", None)], lambda x, y: "merged") == {"a": "merged"}


def test_async_helpers_await_what_the_functions_return() -> None:
    async def create(v: int) -> list[int]:
        return [v]

    async def merge(c: list[int], v: int) -> list[int]:
        return [*c, v]

    pairs = [("a", 1), ("b", 2), ("a", 3)]
    assert asyncio.run(combine_pairs_async(pairs, create, merge)) == {"a": [1, 3], "b": [2]}
    acc: dict[str, Any] = {"a": [1]}
    asyncio.run(merge_into_async(acc, {"a": [2], "c": [3]}, operator.add))
    assert acc == {"a": [1, 2], "c": [3]}


def test_merge_dicts_and_merge_into() -> None:
    one = {"a": 1}
    assert merge_dicts([one], operator.add) is one  # read only: no copy
    assert merge_dicts([{"a": 1}, {"b": 2}, {"a": 10}], operator.add) == {"a": 11, "b": 2}
    acc: dict[str, int] = {}
    merge_into(acc, {"x": 1}, operator.add)
    merge_into(acc, {"x": 2, "y": 3}, operator.sub)
    assert acc == {"x": -1, "y": 3}


def test_hash_partition_hands_over_a_dict_view_whole_and_splits_by_key() -> None:
    d = {"a": 1, "b": 2}
    parts: list[object] = list(hash_partition(d.items(), 1))
    assert len(parts) == 1
    assert type(parts[0]) is type(d.items())  # the view itself: no copy into a list
    assert hash_partition(iter([("a", 1)]), 1) == [[("a", 1)]]
    split = hash_partition([(i, str(i)) for i in range(7)], 3, lambda k: k)
    assert split == [[(0, "0"), (3, "3"), (6, "6")], [(1, "1"), (4, "4")], [(2, "2"), (5, "5")]]
