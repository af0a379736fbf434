"""Internal helpers: time conversion and the names and code of user functions."""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime

from asyncstream._util import call_site, code_of, fn_name, is_async_callable, time_to_ms


async def _coro(x: int) -> int:
    return x


def _plain(x: int) -> int:
    return x


class _AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


class _Callable:
    def __call__(self, x: int) -> int:
        return x


def test_a_naive_datetime_is_local_time() -> None:
    aware = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    naive_local = aware.astimezone().replace(tzinfo=None)
    assert time_to_ms(naive_local) == time_to_ms(aware) == 1_704_110_400_000
    assert time_to_ms(1.5) == 1500


def test_async_callables_are_found_through_partials_and_call() -> None:
    assert is_async_callable(_coro)
    assert is_async_callable(functools.partial(functools.partial(_coro), 1))
    assert is_async_callable(_AsyncCallable())
    assert not is_async_callable(functools.partial(_plain, 1))
    assert not is_async_callable(_Callable())
    assert not is_async_callable(42)


def test_function_names_see_through_partials() -> None:
    assert fn_name(functools.partial(_plain, 1)) == "_plain"
    assert fn_name(lambda x: x) == "test_function_names_see_through_partials.<locals>.<lambda>"
    assert fn_name(_Callable()) == "_Callable"


def test_code_of_finds_the_function_behind_partials_and_call() -> None:
    assert code_of(functools.partial(_plain, 1)) is _plain.__code__
    assert code_of(_Callable()) is _Callable.__call__.__code__
    assert code_of(42) is None


def test_call_site_is_the_first_frame_outside_the_package() -> None:
    site, line = call_site(), sys._getframe().f_lineno
    assert site == f"test_util.py:{line}"
