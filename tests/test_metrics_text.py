"""``metrics_text()`` read back with prometheus_client's own parser (and promtool's linter).

The counts must be what the job saw: the batches a listener saw complete, the records
it saw go in, one histogram observation per completed batch.
"""

from __future__ import annotations

import operator
import shutil
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from helpers import Completed
from prometheus_client.parser import text_string_to_metric_families

from asyncstream import State, StateSpec, StreamingContext

if TYPE_CHECKING:
    from pathlib import Path

    from asyncstream.testing import ManualClock


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def every_stateful_job(clock: ManualClock, tmp_path: Path) -> tuple[StreamingContext, Completed]:
    ssc = StreamingContext(1, clock=clock)
    seen = Completed()
    ssc.add_listener(seen)
    words = ssc.queue_stream([["a b", "b"], ["c"], [], ["a a"]]).flat_map(str.split)
    pairs = words.map(lambda w: (w, 1))
    drop = lambda batch: None  # noqa: E731
    pairs.reduce_by_key_and_window(operator.add, operator.sub, 3, 1).foreach_batch(drop)
    pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs)).foreach_batch(drop)

    def touch(key: str, value: int | None, state: State[int]) -> None:
        state.update((state.get() if state.exists() else 0) + 1)

    spec: StateSpec[str, int, int, None] = StateSpec(touch)
    pairs.map_with_state(spec).foreach_batch(drop)
    words.count_by_window(2, 1).foreach_batch(drop)
    words.window(2, 1).foreach_batch(drop)
    incoming = tmp_path / "in"
    incoming.mkdir()
    ssc.text_file_stream(incoming, errors="strict").foreach_batch(drop)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    (tmp_path / "bad.txt").rename(incoming / "bad.txt")
    return ssc, seen


async def test_metrics_parse_and_count_what_the_job_saw(clock: ManualClock, tmp_path: Path) -> None:
    ssc, seen = every_stateful_job(clock, tmp_path)
    async with ssc:
        await clock.advance(4)
        text = ssc.metrics_text()
    got = samples(text)
    assert families(text) == {
        "asyncstream_batches_completed": "counter",
        "asyncstream_batches_queued": "gauge",
        "asyncstream_processing_delay_seconds": "histogram",
        "asyncstream_scheduling_delay_seconds": "histogram",
        "asyncstream_input_records": "counter",
        "asyncstream_operator_seconds": "counter",
        "asyncstream_state_keys": "gauge",
        "asyncstream_input_rate_limit": "gauge",
        "asyncstream_source_errors": "counter",
        "asyncstream_source_statistic": "gauge",
    }
    assert got["asyncstream_batches_completed_total"] == [({}, 4.0)]
    assert got["asyncstream_batches_queued"] == [({}, 0.0)]
    for hist in ("processing", "scheduling"):
        assert got[f"asyncstream_{hist}_delay_seconds_count"] == [({}, 4.0)]
        assert got[f"asyncstream_{hist}_delay_seconds_bucket"][-1] == ({"le": "+Inf"}, 4.0)
    assert got["asyncstream_input_records_total"] == [
        ({"stream": "0:queue_stream"}, 4.0),
        ({"stream": "1:text_file_stream(" + str(tmp_path / "in") + ")"}, 0.0),
    ]
    assert sum(b.num_records for b in seen.batches) == 4
    # Operator labels are BatchInfo's names; every stateful operator reports its state.
    timed = {name for b in seen.batches for name in b.operator_seconds}
    assert {labels["operator"] for labels, _ in got["asyncstream_operator_seconds_total"]} == timed
    state = {
        labels["operator"].split(" at ")[0].split("(")[0]: value
        for labels, value in got["asyncstream_state_keys"]
    }
    # After t=4 the windows keep what the window at t=5 still needs: the batches of t=3
    # and t=4 for the 3 s window ({} and {"a": 2}), that of t=4 for the 2 s ones.
    assert state == {
        "reduce_by_key_and_window": 1.0,
        "update_state_by_key": 3.0,  # a, b, c
        "map_with_state": 3.0,
        "count_by_window": 1.0,  # one count per kept batch
        "window": 2.0,  # the records "a", "a"
    }
    stateful_names = {labels["operator"] for labels, _ in got["asyncstream_state_keys"]}
    assert stateful_names <= timed
    assert seen.errors == [(f"text_file_stream({tmp_path / 'in'})", "decode")]
    assert got["asyncstream_source_errors_total"] == [
        ({"source": f"text_file_stream({tmp_path / 'in'})", "kind": "decode"}, 1.0)
    ]
    statistic = {(lab["stream"], lab["name"]): v for lab, v in got["asyncstream_source_statistic"]}
    assert statistic[(f"1:text_file_stream({tmp_path / 'in'})", "failed_files")] == 1.0


def test_metrics_before_start_are_zero(clock: ManualClock, tmp_path: Path) -> None:
    ssc, _ = every_stateful_job(clock, tmp_path)
    got = samples(ssc.metrics_text())
    assert got["asyncstream_batches_completed_total"] == [({}, 0.0)]
    assert got["asyncstream_processing_delay_seconds_count"] == [({}, 0.0)]
    assert {v for _, v in got["asyncstream_state_keys"]} == {0.0}
    status = ssc._observe().status()
    assert (status["state"], status["last_batch"], status["batches_completed"]) == (
        "initialized",
        None,
        0,
    )


async def test_promtool_finds_nothing_to_lint(clock: ManualClock, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    ssc, _ = every_stateful_job(clock, tmp_path)
    async with ssc:
        await clock.advance(2)
    checked = await anyio.run_process(
        [promtool, "check", "metrics"], input=ssc.metrics_text().encode(), check=False
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


async def test_event_time_operators_report_their_open_windows_and_sessions(
    clock: ManualClock,
) -> None:
    ssc = StreamingContext(1, clock=clock)
    events = ssc.queue_stream([[("a", 0.5), ("b", 0.7), ("a", 12.0)]])
    timed = events.with_event_time(lambda r: r[1], lateness=100).map(lambda r: (r[0], 1))
    timed.reduce_by_key_and_event_window(operator.add, 10).foreach_batch(lambda b: None)
    timed.reduce_by_key_and_session(operator.add, 5).foreach_batch(lambda b: None)
    async with ssc:
        await clock.advance(1)
        text = ssc.metrics_text()
    state = {
        labels["operator"].split(" at ")[0].split("(")[0]: value
        for labels, value in samples(text)["asyncstream_state_keys"]
    }
    # Windows [0, 10) for a and b, [10, 20) for a; sessions: a twice (12 s apart), b once.
    assert state == {"reduce_by_key_and_event_window": 3.0, "reduce_by_key_and_session": 3.0}


async def test_a_batch_whose_checkpoint_did_not_commit_is_not_counted(
    clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncstream.checkpoint import Checkpoint

    commit = Checkpoint.commit

    def commit_once(self: Checkpoint, t: int, *args: Any, **kwargs: Any) -> None:
        if t >= 2000:
            msg = "disk full"
            raise OSError(msg)
        commit(self, t, *args, **kwargs)

    monkeypatch.setattr(Checkpoint, "commit", commit_once)
    ssc = StreamingContext(1, clock=clock)
    ssc.checkpoint(tmp_path / "checkpoint")
    seen = Completed()
    ssc.add_listener(seen)
    ssc.queue_stream([["a"], ["b"], ["c"]]).foreach_batch(lambda batch: None)
    await ssc.start()
    await clock.advance(2)
    with pytest.raises(OSError, match=r"^disk full$"):
        await ssc.await_termination()
    got = samples(ssc.metrics_text())
    assert got["asyncstream_batches_completed_total"] == [({}, 1.0)]
    assert got["asyncstream_input_records_total"] == [({"stream": "0:queue_stream"}, 1.0)]
    assert [b.batch_time_ms for b in seen.batches] == [1000]
