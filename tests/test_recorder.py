"""The recorder of completed batches, alone: folding, history, waiting."""

from __future__ import annotations

from asyncstream._recorder import HISTORY, Recorder
from asyncstream._stateful import Stateful


def test_totals_and_history_fold_what_was_queued() -> None:
    rec = Recorder(("0:a", "1:b"))
    for t in range(1, HISTORY + 6):
        rec.batch_completed(t * 1000, (t, 1), t, t + 0.5, t + 0.75, {"op": 0.25})
    assert rec.completed == 0  # queued, not folded yet
    assert rec.last() is not None
    assert rec.completed == HISTORY + 5
    assert rec.input_records == [sum(range(1, HISTORY + 6)), HISTORY + 5]
    assert rec.operator_seconds == {"op": 0.25 * (HISTORY + 5)}
    assert rec.scheduling.cumulative()[-1] == ("+Inf", HISTORY + 5)
    assert dict(rec.scheduling.cumulative())["0.25"] == 0
    assert dict(rec.scheduling.cumulative())["0.5"] == HISTORY + 5
    assert rec.processing.sum == 0.25 * (HISTORY + 5)
    kept = rec.since(0)
    assert [r.seq for r in kept] == list(range(6, HISTORY + 6))
    assert kept[-1].as_json(rec.streams)["stream_records"] == {"0:a": HISTORY + 5, "1:b": 1}


async def test_a_waiter_after_the_stop_is_done_at_once() -> None:
    rec = Recorder()
    pending = rec.next_batch()
    rec.close()
    assert pending.done()
    assert rec.next_batch().done()
    assert rec.last() is None


def test_a_stateful_operator_reports_no_state_unless_it_counts_it() -> None:
    assert Stateful().state_keys() == 0
