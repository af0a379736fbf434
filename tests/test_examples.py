"""The examples run, and do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_queue_wordcount_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    load("queue_wordcount").main(seconds=0.5, interval=0.1)
    out = capsys.readouterr().out
    assert "('be', 2)\n('to', 2)\n('is', 1)\n('not', 1)\n('or', 1)\n...\n" in out
    assert "('and', 1)\n('arrows', 1)\n('slings', 1)\n('the', 1)\n\n" in out


async def test_embedded_counts_counts_every_batch() -> None:
    results = await load("embedded_counts").main(batches=3, interval=0.05)
    assert len(results) == 3
    for batch in results:
        counts = dict(batch)
        assert set(counts) <= {"click", "view"}
    assert any(dict(b).get("click", 0) > 0 for b in results)
