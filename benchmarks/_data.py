"""Deterministic benchmark data (see shared BENCHMARKS.md) and the shared report table.

Every generator seeds its own ``random.Random(42)``, so a run always sees the same data.
Generate once per run, outside timing.
"""

from __future__ import annotations

import itertools
import platform
import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The interpreter every table names ("CPython 3.11.7").
PYTHON = f"{platform.python_implementation()} {platform.python_version()}"
VOCAB_SIZE = 10_000
WORDS_PER_LINE = 10


def vocabulary(rng: random.Random, size: int = VOCAB_SIZE) -> list[str]:
    """``size`` distinct pseudo-words of 2-10 lowercase letters, in rank order."""
    seen: set[str] = set()
    words: list[str] = []
    letters = string.ascii_lowercase
    while len(words) < size:
        word = "".join(rng.choices(letters, k=rng.randint(2, 10)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def text_batches(n_batches: int, lines_per_batch: int) -> list[list[str]]:
    """Batches of lines of 10 words, drawn with Zipf weights ``1/rank``."""
    rng = random.Random(42)
    vocab = vocabulary(rng)
    cum = list(itertools.accumulate(1 / rank for rank in range(1, len(vocab) + 1)))
    batches: list[list[str]] = []
    for _ in range(n_batches):
        words = rng.choices(vocab, cum_weights=cum, k=lines_per_batch * WORDS_PER_LINE)
        it = iter(words)
        batches.append([" ".join(line) for line in zip(*[it] * WORDS_PER_LINE, strict=True)])
    return batches


def user_batches(
    n_batches: int, events_per_batch: int, n_users: int
) -> list[list[tuple[str, int]]]:
    """Batches of ``(user_id, 1)`` events, ids ``u000000``.. drawn uniformly."""
    rng = random.Random(42)
    ids = [f"u{i:06d}" for i in range(n_users)]
    return [[(u, 1) for u in rng.choices(ids, k=events_per_batch)] for _ in range(n_batches)]


def tiny_batches(n: int) -> list[list[int]]:
    """``n`` batches of 10 integers."""
    rng = random.Random(42)
    return [[rng.randrange(1_000) for _ in range(10)] for _ in range(n)]


@dataclass(frozen=True, slots=True)
class Row:
    """One workload's result: medians in ms per batch, ratio = median of paired ratios."""

    workload: str
    baseline: str
    engine_ms: float
    baseline_ms: float
    ratio: float
    rounds: int
    target: float | None = None


def report(rows: list[Row], loop: str) -> None:
    """Print the table every benchmark script prints."""
    python = PYTHON
    header = (
        "workload",
        "baseline",
        "engine ms/batch",
        "baseline ms/batch",
        "ratio",
        "target",
        "met",
        "rounds",
        "python",
        "loop",
    )
    table = [header]
    for r in rows:
        met = "-" if r.target is None else ("met" if r.ratio <= r.target else "NOT met")
        table.append(
            (
                r.workload,
                r.baseline,
                f"{r.engine_ms:.4g}",
                f"{r.baseline_ms:.4g}",
                f"{r.ratio:.3f}x",
                "-" if r.target is None else f"<= {r.target:g}x",
                met,
                str(r.rounds),
                python,
                loop,
            )
        )
    print_aligned(table)


def print_aligned(table: Sequence[Sequence[str]]) -> None:
    """Print ``table`` (its first row the header) in aligned columns, a rule under the header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("-+-".join("-" * w for w in widths))
