"""Run stages on a Dask distributed cluster (SPEC §4), with the asynchronous client.

Dask is an optional extra (``pip install 'asyncstream[dask]'``); ``distributed`` is
imported when a :class:`DaskExecutor` is created, never when asyncstream is imported.

Per batch, the stage is pickled once with cloudpickle and each partition is pickled into
a bytes blob on the driver, then submitted as one task (shipping blobs, not lists of
records, keeps Dask's serialization out of the per-record path). Blobs travel inside the
task, held by the scheduler, so a task whose worker died can be retried elsewhere. Results
come back as blobs, in partition order; merging them stays on the driver. The shipping
itself (pickling, the function the workers run, errors) is in ``_shipping.py``, shared
with the process executor.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, Self, cast, final

import anyio
import cloudpickle

from ._shipping import (
    WorkerShippingError,
    dump_part,
    dump_stage,
    load_result,
    run_blob,
    shipping_error,
)
from .errors import MissingExtraError, WorkerLostError
from .executors import ExecutorContext

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable
    from types import ModuleType

    import distributed

    from .executors import Stage

__all__ = ["DaskExecutor"]

logger = logging.getLogger("asyncstream")

_WHERE: Final = "Dask workers"
_CLOSE_TIMEOUT: Final = 10.0  # seconds aclose() gives the client, then the cluster
_LOAD_HINT: Final = (
    "make the function's module importable on the workers: "
    "DaskExecutor(..., upload=['path/to/module.py']) or DaskExecutor(..., by_value=[module])"
)

# Modules this process registered with cloudpickle.register_pickle_by_value, and how many
# running executors asked for each (the registry is global to the process).
_BY_VALUE_USERS: Counter[str] = Counter()


def _import_distributed() -> ModuleType:
    try:
        import distributed  # an optional extra: imported on use
    except ImportError as err:
        msg = (
            "DaskExecutor needs the 'distributed' package, which is not installed: "
            "pip install 'asyncstream[dask]'"
        )
        raise MissingExtraError(msg) from err
    return distributed


@final
class DaskExecutor(ExecutorContext):
    """Run partition work on a Dask distributed cluster.

    ``start()`` connects an asynchronous :class:`distributed.Client` on the context's
    event loop (or uses the one given, which must be asynchronous and on that loop). Each
    batch submits one task per partition and awaits the results; at most
    ``max_in_flight`` batches have tasks on the cluster at once, later ones wait.

    User functions must be picklable by cloudpickle, and the workers must be able to
    import the modules they come from (and asyncstream itself, in the same Python
    version). For a module only the driver has, pass ``upload=`` (files sent with
    ``Client.upload_file`` to the scheduler and every worker, current and future) or
    ``by_value=`` (modules pickled by value, with their functions' code).

    A worker that dies while it runs a partition is retried by Dask on another worker;
    after ``distributed.scheduler.allowed-failures`` deaths (3 by default) the batch fails
    with :class:`WorkerLostError`. If no worker is left at all, Dask waits for one to join
    (set ``distributed.scheduler.no-workers-timeout`` to fail instead).

    Args:
        address_or_client: A scheduler address (``"tcp://10.0.0.5:8786"``) or a
            ``distributed.Client(..., asynchronous=True)``; a given client stays open at
            ``aclose()``.
        upload: Paths of ``.py``, ``.egg`` or ``.zip`` files to send to the cluster at
            start.
        by_value: Modules (or their names) whose functions are pickled by value while the
            executor runs.
        max_in_flight: Batches whose tasks may be on the cluster at the same time.

    Raises:
        MissingExtraError: ``distributed`` is not installed.
        TypeError: ``address_or_client`` is neither an address nor a ``Client``.
        ValueError: ``max_in_flight`` is not a positive int, or an upload path is no file.

    Example:
        Nothing connects before the context starts:

        >>> from asyncstream import StreamingContext
        >>> executor = DaskExecutor("tcp://scheduler:8786")
        >>> executor
        DaskExecutor('tcp://scheduler:8786') [not started]
        >>> ssc = StreamingContext(1.0, executor=executor)  # starts and closes it

        A run on a local cluster (not run with the docs: starting one takes seconds):

        >>> build = lambda s: s.flat_map(str.split).count_by_value()
        >>> inputs = [[["a b", "b c"], ["c"]]]
        >>> executor = DaskExecutor.local(workers=1)
        >>> asyncio.run(run_stream(build, inputs, batches=2, executor=executor))  # doctest: +SKIP
        [[('a', 1), ('b', 2), ('c', 1)], [('c', 1)]]
    """

    inline = False

    def __init__(
        self,
        address_or_client: str | distributed.Client,
        *,
        upload: Iterable[str | os.PathLike[str]] = (),
        by_value: Iterable[ModuleType | str] = (),
        max_in_flight: int = 4,
    ) -> None:
        dist = _import_distributed()
        client: distributed.Client | None = None
        address: str | None = None
        if isinstance(address_or_client, dist.Client):
            client = address_or_client
        elif isinstance(address_or_client, str) and address_or_client:
            address = address_or_client
        else:
            msg = (
                "DaskExecutor() takes a scheduler address such as 'tcp://host:8786' or a "
                f"distributed.Client(..., asynchronous=True), got {address_or_client!r}; "
                "use DaskExecutor.local(workers) for a cluster on this machine"
            )
            raise TypeError(msg)
        self._setup(address, client, None, upload, by_value, max_in_flight)

    @classmethod
    def local(
        cls,
        workers: int = 2,
        *,
        threads_per_worker: int = 1,
        by_value: Iterable[ModuleType | str] = (),
        max_in_flight: int = 4,
    ) -> Self:
        """A Dask cluster on this machine, started with the executor and closed with it.

        The ``LocalCluster`` has one process per worker (each behind a nanny that restarts
        it when it dies) and listens on the loopback interface only, dashboard included
        (on a free port: see :attr:`dashboard_link`).

        Args:
            workers: Worker processes.
            threads_per_worker: Threads in each worker process.
            by_value: Modules (or their names) whose functions are pickled by value.
            max_in_flight: Batches whose tasks may be on the cluster at the same time.

        Returns:
            An executor that is not started yet.

        Raises:
            MissingExtraError: ``distributed`` is not installed.
            ValueError: ``workers`` or ``threads_per_worker`` is not a positive int.

        Example:
            >>> DaskExecutor.local(workers=2)
            DaskExecutor(local(workers=2, threads_per_worker=1)) [not started]

            Used on its own (not run with the docs: starting a cluster takes seconds):

            >>> async def main() -> None:
            ...     async with DaskExecutor.local(workers=2) as executor:
            ...         print(executor.dashboard_link)
            >>> asyncio.run(main())  # doctest: +SKIP
            http://127.0.0.1:.../status
        """
        _import_distributed()
        for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
            if isinstance(value, bool) or not isinstance(cast("object", value), int) or value < 1:
                msg = f"DaskExecutor.local(): {name} must be a positive int, got {value!r}"
                raise ValueError(msg)
        executor = cls.__new__(cls)
        executor._setup(None, None, (workers, threads_per_worker), (), by_value, max_in_flight)
        return executor

    def _setup(
        self,
        address: str | None,
        client: distributed.Client | None,
        local: tuple[int, int] | None,
        upload: Iterable[str | os.PathLike[str]],
        by_value: Iterable[ModuleType | str],
        max_in_flight: int,
    ) -> None:
        value: object = max_in_flight
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"max_in_flight must be a positive int, got {max_in_flight!r}"
            raise ValueError(msg)
        self._address = address
        self._given_client = client
        self._local = local
        self._upload = tuple(os.fspath(path) for path in upload)
        for path in self._upload:
            if not os.path.isfile(path):
                msg = f"upload: {path!r} is not a file; pass .py, .egg or .zip files"
                raise ValueError(msg)
        self._by_value = tuple(by_value)
        self.max_in_flight = max_in_flight
        self._slots = anyio.Semaphore(max_in_flight)  # not tied to a loop until used
        self._client: distributed.Client | None = None
        self._cluster: distributed.LocalCluster | None = None
        self._registered: list[str] = []

    def __repr__(self) -> str:
        if self._local is not None:
            where = f"local(workers={self._local[0]}, threads_per_worker={self._local[1]})"
        elif self._address is not None:
            where = repr(self._address)
        else:
            where = repr(self._given_client)
        return f"DaskExecutor({where}) [{self._state.value}]"

    @property
    def client(self) -> distributed.Client:
        """The asynchronous ``distributed.Client`` (while the executor runs).

        Raises:
            ContextStateError: The executor is not started, or closed.
        """
        return self._running("client", self._client)

    @property
    def dashboard_link(self) -> str | None:
        """The address of the Dask dashboard, if the scheduler serves one."""
        link = self._running("dashboard_link", self._client).dashboard_link
        return None if link is None else str(link)

    async def _open(self) -> None:
        """Connect to the cluster (starting the local one first), upload files.

        ``start()`` closes the executor if this fails.

        Raises:
            TypeError: The given client is not asynchronous or runs on another loop.
            OSError: The scheduler cannot be reached.
        """
        dist = _import_distributed()
        if self._given_client is not None:
            self._client = await _checked_client(self._given_client)
        else:
            target: Any = self._address
            if self._local is not None:
                workers, threads = self._local
                self._cluster = await dist.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=threads,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    asynchronous=True,
                    # Errors of user functions come back to the driver and are raised
                    # there; the workers' own logs would only repeat them, and at
                    # shutdown a worker's last heartbeat may log a traceback.
                    silence_logs=logging.CRITICAL,
                )
                target = self._cluster
            self._client = await dist.Client(target, asynchronous=True, set_as_default=False)
        for path in self._upload:
            await self._client.upload_file(path)
        self._register_by_value()

    def _register_by_value(self) -> None:
        registered = cloudpickle.list_registry_pickle_by_value()
        for module in self._by_value:
            mod = importlib.import_module(module) if isinstance(module, str) else module
            name = mod.__name__
            if name in registered and not _BY_VALUE_USERS[name]:
                continue  # registered by the application itself: leave it alone
            if not _BY_VALUE_USERS[name]:
                cloudpickle.register_pickle_by_value(mod)
            _BY_VALUE_USERS[name] += 1
            self._registered.append(name)

    def _unregister_by_value(self) -> None:
        for name in self._registered:
            _BY_VALUE_USERS[name] -= 1
            if not _BY_VALUE_USERS[name]:
                del _BY_VALUE_USERS[name]
                module = importlib.import_module(name)
                cloudpickle.unregister_pickle_by_value(module)
        self._registered.clear()

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        """Run ``stage(i, parts[i])`` as one Dask task per partition; results in order.

        Args:
            stage: The per-partition function; pickled with cloudpickle.
            parts: The records of each partition.
            label: The operator's name, for error messages.

        Returns:
            One result per partition, in partition order.

        Raises:
            SerializationError: The stage, records or a result cannot be pickled across,
                or the workers cannot import the stage's module.
            WorkerLostError: Workers kept dying while running a partition (Dask's
                ``KilledWorker``), or the cluster cancelled its task.
            ContextStateError: The executor is not started, or closed.
            Exception: Whatever the stage raised on the worker, as the same type, with
                the worker's traceback.
        """
        client = self._running("run()", self._client)
        if not parts:
            return []
        dist = _import_distributed()
        stage_blob = dump_stage(stage, label, _WHERE)
        prefix = f"asyncstream_{re.sub(r'[^0-9A-Za-z_]+', '_', label)[:60]}-{uuid.uuid4().hex}"
        async with self._slots:
            blobs = [dump_part(part, i, label, _WHERE) for i, part in enumerate(parts)]
            futures: list[distributed.Future[bytes]] = []
            try:
                for i, blob in enumerate(blobs):
                    futures.append(
                        client.submit(
                            run_blob, stage_blob, i, blob, key=f"{prefix}-{i}", pure=False
                        )
                    )
                results: list[bytes] = await client.gather(futures)  # type: ignore[no-untyped-call]
            except dist.KilledWorker as err:
                index = _index_of(err.task)
                msg = (
                    f"{label}: partition {index} was attempted on {err.allowed_failures + 1} "
                    f"workers and each died while running it (last: {err.last_worker.address}); "
                    "the function may crash its process (os._exit, a segfault, out of memory): "
                    "see the worker logs"
                )
                raise WorkerLostError(msg, operator_name=label) from err
            except dist.client.FutureCancelledError as err:
                msg = f"{label}: the cluster cancelled partition {_index_of(err.key)}: {err}"
                raise WorkerLostError(msg, operator_name=label) from err
            except WorkerShippingError as err:
                raise shipping_error(err, label, _LOAD_HINT) from err
            finally:
                for future in futures:
                    future.release()  # type: ignore[no-untyped-call]
        return [load_result(blob, i, label) for i, blob in enumerate(results)]

    async def _release(self) -> None:
        """Close what ``_open()`` opened: the client (unless given), then the local cluster.

        ``aclose()`` shields this from cancellation; each close is bounded.
        """
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        self._unregister_by_value()
        if client is not None and client is not self._given_client:
            with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                await client.close()  # type: ignore[no-untyped-call]
            if scope.cancelled_caught:
                logger.warning("DaskExecutor: the Dask client did not close in time")
        if cluster is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                await cast("Awaitable[None]", cluster.close())
            if scope.cancelled_caught:
                logger.warning("DaskExecutor: the local Dask cluster did not close in time")


async def _checked_client(client: distributed.Client) -> distributed.Client:
    if not client.asynchronous:
        msg = (
            "DaskExecutor needs an asynchronous client: create it with "
            "distributed.Client(address, asynchronous=True) in async code, or pass the address"
        )
        raise TypeError(msg)
    loop = asyncio.get_running_loop()
    if getattr(client.loop, "asyncio_loop", loop) is not loop:
        msg = (
            "DaskExecutor: the client runs on another event loop; create it in the task "
            "that runs the StreamingContext, or pass the address"
        )
        raise TypeError(msg)
    await client
    return client


def _index_of(key: object) -> str:
    """The partition index at the end of a task key made by :meth:`DaskExecutor.run`."""
    return str(key).rsplit("-", 1)[-1]
