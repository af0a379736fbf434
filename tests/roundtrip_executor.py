"""A test executor: runs stages in this process after a cloudpickle round trip.

It takes the engine's shipping path (stages and partitions pickled, results pickled
back) without starting processes, so the executor path is tested fast and
deterministically; the real process and Dask executors are tested in test_executors.py.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from asyncstream.executors import Stage


class RoundTripExecutor:
    inline = False

    def __init__(self) -> None:
        self.stages_run = 0
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        shipped = pickle.loads(cloudpickle.dumps(stage))
        results = []
        for i, part in enumerate(parts):
            self.stages_run += 1
            result = shipped(i, pickle.loads(pickle.dumps(part)))
            results.append(pickle.loads(pickle.dumps(result)))
        return results

    async def aclose(self) -> None:
        self.closed = True
