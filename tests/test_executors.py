"""ProcessExecutor and DaskExecutor, used directly with small stages (no engine).

The stages are module-level functions, so worker processes import them from this module
(spawned workers get the driver's ``sys.path``). The Dask tests need ``distributed``
(``pip install 'asyncstream[dask]'``) and are skipped without it; they start a loopback
LocalCluster, or a ``dask scheduler`` and a ``dask worker`` as separate processes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asyncstream import (
    DaskExecutor,
    MissingExtraError,
    ProcessExecutor,
    SerializationError,
    WorkerLostError,
)
from asyncstream.errors import ContextStateError
from asyncstream.executors import Executor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

DASK_REASON = "the Dask executor tests need distributed: pip install 'asyncstream[dask]'"


# --- stages (module level: workers import them from here) ---------------------------------


def tag(index: int, records: list[Any]) -> tuple[int, int, list[Any]]:
    return index, os.getpid(), [r * 2 for r in records]


class ParseError(Exception):
    pass


def fail_on_bad(index: int, records: list[Any]) -> list[Any]:
    for record in records:
        if record == "bad":
            msg = f"cannot parse {record!r}"
            raise ParseError(msg)
    return records


def slow_unless_bad(index: int, records: list[Any]) -> list[Any]:
    if records != ["bad"]:
        time.sleep(0.5)
    return fail_on_bad(index, records)


class TwoArgError(Exception):
    """Pickles, but does not unpickle: ``TwoArgError(*args)`` lacks an argument."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def raise_two_arg(index: int, records: list[Any]) -> None:
    a, b = "x", "y"
    raise TwoArgError(a, b)


def return_generator(index: int, records: list[Any]) -> Iterator[Any]:
    return (r for r in records)


def exit_now(index: int, records: list[Any]) -> None:
    os._exit(3)


def exit_once(index: int, records: list[Any]) -> int:
    """Partition 0 kills its worker on the first attempt; records[0] is a marker path."""
    marker = Path(records[0])
    if index == 0 and not marker.exists():
        marker.touch()
        os._exit(3)
    return index


def sleep_then_tag(index: int, records: list[Any]) -> tuple[int, int, list[Any]]:
    time.sleep(records[0])
    return tag(index, records)


def closure_over_lock() -> Any:
    lock = threading.Lock()

    def locked(index: int, records: list[Any]) -> list[Any]:
        with lock:
            return records

    return locked


def cannot_ship(stage: Any, where: str) -> str:
    return (
        rf"^op: cannot ship {re.escape(repr(stage))} to {where}: cannot pickle "
        r"'_thread\.lock' object; define the function at module level or make it picklable$"
    )


def assert_gone(pids: set[int]) -> None:
    """Every pid has exited and been reaped."""
    for _ in range(100):
        alive = set()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                alive.add(pid)
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"worker processes still alive: {sorted(alive)}")


# --- ProcessExecutor -----------------------------------------------------------------------


async def test_process_results_in_partition_order() -> None:
    executor = ProcessExecutor(workers=2)
    assert isinstance(executor, Executor)
    assert executor.inline is False
    parts = [[i, i + 1] for i in range(6)]
    async with executor:
        results = await executor.run(tag, parts, label="op")
        assert await executor.run(tag, [], label="op") == []
    assert [(i, doubled) for i, _, doubled in results] == [
        (i, [2 * i, 2 * i + 2]) for i in range(6)
    ]
    pids = {pid for _, pid, _ in results}
    assert os.getpid() not in pids
    assert_gone(pids)


async def test_process_unpicklable_stage_or_records_name_the_operator() -> None:
    async with ProcessExecutor(workers=1) as executor:
        stage = closure_over_lock()
        with pytest.raises(SerializationError, match=cannot_ship(stage, "worker processes")):
            await executor.run(stage, [[1]], label="op")
        generator = (x for x in [1])
        with pytest.raises(
            SerializationError,
            match=r"^op: cannot ship the records of partition 1 to worker processes: cannot "
            r"pickle 'generator' object; records must be picklable$",
        ):
            await executor.run(tag, [[1], [generator]], label="op")


async def test_process_user_exception_comes_back_as_its_type() -> None:
    async with ProcessExecutor(workers=2) as executor:
        # Partition 1 fails while partition 0 still runs: its error is raised at once.
        with pytest.raises(ParseError, match=r"^cannot parse 'bad'$") as info:
            await executor.run(slow_unless_bad, [["ok"], ["bad"]], label="op")
        remote = "".join(traceback.format_exception(info.value))
        assert "in fail_on_bad" in remote
        assert "raise ParseError(msg)" in remote

        with pytest.raises(
            SerializationError,
            match=r"^op: partition 0 raised TwoArgError: x/y, but it cannot be unpickled "
            r"\(TwoArgError\.__init__\(\) missing 1 required positional argument: 'b'\); "
            r"raise an exception that pickles \(its __init__ takes just the message\)$",
        ):
            await executor.run(raise_two_arg, [[1]], label="op")
        with pytest.raises(
            SerializationError,
            match=r"^op: the result of partition 0 \(generator\) cannot be pickled back to the "
            r"driver: cannot pickle 'generator' object; return picklable values from the "
            r"function$",
        ):
            await executor.run(return_generator, [[1]], label="op")
        # None of that broke the pool.
        assert [r[0] for r in await executor.run(tag, [[1], [2]], label="op")] == [0, 1]


async def test_process_worker_death_fails_the_batch_then_a_new_pool_runs() -> None:
    with anyio.fail_after(30):
        async with ProcessExecutor(workers=2) as executor:
            with pytest.raises(
                WorkerLostError,
                match=r"^words\.map: a worker process died while the batch ran \(killed, out of "
                r"memory, or os\._exit in the function\); the batch failed and later batches "
                r"run on a new pool$",
            ) as info:
                await executor.run(exit_now, [[1], [2]], label="words.map")
            assert info.value.operator_name == "words.map"
            results = await executor.run(tag, [[1], [2]], label="words.map")
            assert [doubled for _, _, doubled in results] == [[2], [4]]
        assert_gone({pid for _, pid, _ in results})


async def test_process_aclose_kills_a_stuck_worker() -> None:
    executor = ProcessExecutor(workers=1, shutdown_timeout=0.5)
    await executor.start()
    try:
        [(_, pid, _)] = await executor.run(tag, [[1]], label="op")
        with anyio.move_on_after(0.5) as scope:
            await executor.run(sleep_then_tag, [[60]], label="op")
        assert scope.cancelled_caught
    finally:
        with anyio.fail_after(10):
            await executor.aclose()
    assert_gone({pid})


async def test_process_lifecycle_misuse() -> None:
    executor = ProcessExecutor(workers=1)
    with pytest.raises(
        ContextStateError,
        match=r"^ProcessExecutor\.run\(\): the executor is not started; use 'async with "
        r"ProcessExecutor\(\.\.\.\)' or pass it to StreamingContext\(executor=\.\.\.\), which "
        r"starts and closes it$",
    ):
        await executor.run(tag, [[1]], label="op")
    await executor.start()
    with pytest.raises(
        ContextStateError,
        match=r"^ProcessExecutor\.start\(\): the executor is started; an executor starts once: "
        r"create a new one$",
    ):
        await executor.start()
    await executor.aclose()
    await executor.aclose()
    with pytest.raises(
        ContextStateError, match=r"^ProcessExecutor\.run\(\): the executor is closed"
    ):
        await executor.run(tag, [[1]], label="op")
    assert repr(executor) == "ProcessExecutor(workers=1, mp_context='spawn') [closed]"


def test_process_arguments_are_checked() -> None:
    with pytest.raises(
        ValueError, match=r"^workers must be a positive int or None \(one per CPU\), got 0$"
    ):
        ProcessExecutor(workers=0)
    with pytest.raises(ValueError, match=r"^mp_context must be one of .*'spawn'.*, got 'threads'$"):
        ProcessExecutor(mp_context="threads")
    assert ProcessExecutor().workers == (os.cpu_count() or 1)


# --- DaskExecutor --------------------------------------------------------------------------


def test_dask_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    message = (
        r"^DaskExecutor needs the 'distributed' package, which is not installed: "
        r"pip install 'asyncstream\[dask\]'$"
    )
    with pytest.raises(MissingExtraError, match=message) as info:
        DaskExecutor("tcp://127.0.0.1:8786")
    assert isinstance(info.value, ImportError)
    with pytest.raises(MissingExtraError, match=message):
        DaskExecutor.local(2)


@pytest.fixture
def distributed() -> ModuleType:
    module: ModuleType = pytest.importorskip("distributed", reason=DASK_REASON)
    return module


@pytest.mark.usefixtures("distributed")
def test_dask_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError,
        match=r"^DaskExecutor\(\) takes a scheduler address such as 'tcp://host:8786' or a "
        r"distributed\.Client\(\.\.\., asynchronous=True\), got 42; use "
        r"DaskExecutor\.local\(workers\) for a cluster on this machine$",
    ):
        DaskExecutor(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^max_in_flight must be a positive int, got 0$"):
        DaskExecutor("tcp://127.0.0.1:8786", max_in_flight=0)
    missing = tmp_path / "missing.py"
    with pytest.raises(
        ValueError,
        match=rf"^upload: {re.escape(repr(str(missing)))} is not a file; pass \.py, \.egg or "
        r"\.zip files$",
    ):
        DaskExecutor("tcp://127.0.0.1:8786", upload=[missing])
    with pytest.raises(
        ValueError, match=r"^DaskExecutor\.local\(\): workers must be a positive int, got 0$"
    ):
        DaskExecutor.local(0)


@pytest.mark.usefixtures("distributed")
async def test_dask_local_cluster_runs_stages_in_order_on_loopback() -> None:
    executor = DaskExecutor.local(2, max_in_flight=1)
    assert isinstance(executor, Executor)
    assert executor.inline is False
    with anyio.fail_after(30):
        async with executor:
            client = executor.client
            scheduler: Any = client.scheduler  # distributed types it loosely
            assert scheduler.address.startswith("tcp://127.0.0.1:")
            assert str(executor.dashboard_link).startswith("http://127.0.0.1:")
            pids = set((await client.run(os.getpid)).values())
            assert len(pids) == 2
            assert os.getpid() not in pids

            parts = [[i, i + 1] for i in range(5)]
            results = await executor.run(tag, parts, label="op")
            assert [(i, doubled) for i, _, doubled in results] == [
                (i, [2 * i, 2 * i + 2]) for i in range(5)
            ]
            assert {pid for _, pid, _ in results} <= pids
            assert await executor.run(tag, [], label="op") == []

            # max_in_flight=1: while batch "a" runs, batch "b" has nothing on the cluster.
            seen: list[set[str]] = []

            async def watch() -> None:
                await anyio.sleep(0.3)
                seen.append({str(key).split("-")[0] for key in client.futures})

            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(executor.run, label="a"), sleep_then_tag, [[1.0], [1.0]])
                tg.start_soon(partial(executor.run, label="b"), tag, [[1]])
                tg.start_soon(watch)
            assert seen == [{"asyncstream_a"}]
            assert not client.futures  # released after each batch
    assert client.status == "closed"
    assert_gone(pids)


@pytest.mark.usefixtures("distributed")
async def test_dask_errors_come_back_clearly() -> None:
    with anyio.fail_after(30):
        async with DaskExecutor.local(1) as executor:
            with pytest.raises(ParseError, match=r"^cannot parse 'bad'$") as info:
                await executor.run(fail_on_bad, [["ok"], ["bad"]], label="op")
            remote = "".join(traceback.format_exception(info.value))
            assert "in fail_on_bad" in remote
            assert "raise ParseError(msg)" in remote

            stage = closure_over_lock()
            with pytest.raises(SerializationError, match=cannot_ship(stage, "Dask workers")):
                await executor.run(stage, [[1]], label="op")
            with pytest.raises(
                SerializationError,
                match=r"^op: the result of partition 0 \(generator\) cannot be pickled back to "
                r"the driver: cannot pickle 'generator' object; return picklable values from "
                r"the function$",
            ):
                await executor.run(return_generator, [[1]], label="op")


@pytest.mark.usefixtures("distributed")
async def test_dask_worker_killed_mid_stage_is_retried(tmp_path: Path) -> None:
    marker = str(tmp_path / "killed-once")
    with anyio.fail_after(30):
        async with DaskExecutor.local(2) as executor:
            results = await executor.run(exit_once, [[marker]] * 4, label="op")
    assert results == [0, 1, 2, 3]
    assert await anyio.Path(marker).exists()  # partition 0 did kill a worker once


async def test_dask_stage_killing_every_worker_fails_clearly(distributed: ModuleType) -> None:
    import dask  # after the skip: dask comes with distributed

    with anyio.fail_after(30):
        executor = DaskExecutor.local(2)
        try:
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                await executor.start()  # the scheduler reads the setting when it starts
            with pytest.raises(
                WorkerLostError,
                match=r"^words\.map: partition 0 was attempted on 2 workers and each died while "
                r"running it \(last: tcp://127\.0\.0\.1:\d+\); the function may crash its "
                r"process \(os\._exit, a segfault, out of memory\): see the worker logs$",
            ) as info:
                await executor.run(exit_now, [[1]], label="words.map")
        finally:
            await executor.aclose()
    assert isinstance(info.value.__cause__, distributed.KilledWorker)
    assert info.value.operator_name == "words.map"


# --- a cluster of separate processes, connected by address ---------------------------------


def write_module(directory: Path, stem: str, body: str) -> tuple[Path, str]:
    name = f"{stem}_{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.py"
    path.write_text(body)
    return path, name


UPPER_MODULE = """
def upper(index, records):
    return [r.upper() for r in records]
"""


@pytest.fixture
def dask_processes(distributed: ModuleType, tmp_path: Path) -> Iterator[str]:
    """A ``dask scheduler`` and a ``dask worker`` in their own processes; their address.

    They run in a directory of their own, so they cannot import the modules the test
    writes next to it.
    """
    cwd = tmp_path / "cluster"
    cwd.mkdir()
    scheduler_file = cwd / "scheduler.json"
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(cwd)}
    common: dict[str, Any] = {"cwd": cwd, "env": env, "stdout": subprocess.DEVNULL}
    procs: list[subprocess.Popen[bytes]] = []
    with (cwd / "scheduler.log").open("wb") as slog, (cwd / "worker.log").open("wb") as wlog:
        try:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "distributed.cli.dask_scheduler"),
                        *("--host", "127.0.0.1", "--port", "0"),
                        *("--dashboard-address", "127.0.0.1:0"),
                        *("--scheduler-file", str(scheduler_file)),
                    ],
                    stderr=slog,
                    **common,
                )
            )
            for _ in range(300):
                if scheduler_file.exists() and scheduler_file.stat().st_size:
                    break
                assert procs[0].poll() is None, (cwd / "scheduler.log").read_text()
                time.sleep(0.05)
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "distributed.cli.dask_worker"),
                        *("--scheduler-file", str(scheduler_file), "--host", "127.0.0.1"),
                        *("--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard"),
                    ],
                    stderr=wlog,
                    **common,
                )
            )
            info = scheduler_file.read_text()
            address = re.search(r'"address": "(tcp://127\.0\.0\.1:\d+)"', info)
            assert address is not None, info
            yield address.group(1)
        finally:
            for proc in reversed(procs):  # the worker first, then the scheduler
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def test_dask_cluster_by_address_with_upload_and_by_value(
    distributed: ModuleType,
    dask_processes: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cloudpickle

    mods = tmp_path / "mods"
    mods.mkdir()
    uploaded_path, uploaded_name = write_module(mods, "asx_uploaded", UPPER_MODULE)
    _, by_value_name = write_module(mods, "asx_by_value", UPPER_MODULE)
    monkeypatch.syspath_prepend(str(mods))
    uploaded = importlib.import_module(uploaded_name)
    by_value = importlib.import_module(by_value_name)

    with anyio.fail_after(30):
        # Without upload= or by_value=, the worker cannot import the module.
        async with DaskExecutor(dask_processes) as plain:
            client: Any = plain.client  # wait_for_workers is typed for the sync client
            await client.wait_for_workers(1)
            with pytest.raises(
                SerializationError,
                match=rf"^op: the workers cannot load the stage: ModuleNotFoundError: No module "
                rf"named '{uploaded_name}'; make the function's module importable on the "
                r"workers: DaskExecutor\(\.\.\., upload=\['path/to/module\.py'\]\) or "
                r"DaskExecutor\(\.\.\., by_value=\[module\]\)$",
            ):
                await plain.run(uploaded.upper, [["a"]], label="op")

        async with DaskExecutor(
            dask_processes, upload=[uploaded_path], by_value=[by_value]
        ) as executor:
            assert by_value_name in cloudpickle.list_registry_pickle_by_value()
            parts = [["a", "b"], ["c"]]
            assert await executor.run(uploaded.upper, parts, label="op") == [["A", "B"], ["C"]]
            assert await executor.run(by_value.upper, parts, label="op") == [["A", "B"], ["C"]]
        assert by_value_name not in cloudpickle.list_registry_pickle_by_value()

        # A client made by the application is used, and left open.
        async with distributed.Client(
            dask_processes, asynchronous=True, set_as_default=False
        ) as client:
            async with DaskExecutor(client, by_value=[by_value]) as given:
                assert await given.run(by_value.upper, [["x"]], label="op") == [["X"]]
            assert client.status == "running"
