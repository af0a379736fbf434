"""The built-in sentence generator behind ``asyncstream demo`` (no server needed)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._buffer import RecordBuffer
    from ._source_api import SourceEvents
    from .clock import Clock

__all__: list[str] = []

_SUBJECTS = ["the cat", "a dog", "the stream", "my batch", "the window", "a key", "the clock"]
_VERBS = ["sees", "counts", "joins", "reduces", "sleeps near", "follows", "maps"]
_OBJECTS = ["the queue", "a word", "the tick", "every record", "the socket", "a state", "spark"]


class SentenceSource:
    """Random sentences, ``per_second`` of them, paced by the context's clock."""

    def __init__(self, clock: Clock, per_second: int = 20, seed: int | None = None) -> None:
        self.clock = clock
        self.per_second = per_second
        self.random = random.Random(seed)
        self.sentences = 0

    @property
    def name(self) -> str:
        """Readable name of the source."""
        return "demo sentences"

    def statistics(self) -> Mapping[str, int]:
        """Sentences made so far."""
        return {"records": self.sentences}

    def sentence(self) -> str:
        """One random sentence."""
        r = self.random
        return f"{r.choice(_SUBJECTS)} {r.choice(_VERBS)} {r.choice(_OBJECTS)}"

    async def run(self, out: RecordBuffer[str], events: SourceEvents) -> None:
        """Put a few sentences ten times a second, forever."""
        step = 0.1
        per_step = max(1, round(self.per_second * step))
        deadline = self.clock.now()
        while True:
            await out.put_many([self.sentence() for _ in range(per_step)])
            self.sentences += per_step
            deadline += step
            await self.clock.sleep_until(deadline)
