"""The context's metrics for Prometheus (SPEC §11), built with ``prometheus_client``.

A custom collector reads one :class:`~asyncstream._observe.Observed` per scrape, so every
family of one scrape agrees (the histograms' counts equal the completed batches), and
nothing is computed between scrapes. Label values are the names ``statistics()`` and
``BatchInfo`` use: ``stream="0:socket_text_stream(localhost:9000)"``,
``operator="reduce_by_key at app.py:12"``. ``prometheus_client`` writes the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from ._observe import Observed

__all__: list[str] = []


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as err:
        msg = (
            "metrics need prometheus_client, which is not installed; "
            "install it with: pip install 'asyncstream[ui]'"
        )
        raise MissingExtraError(msg) from err
    return prometheus_client


def families(seen: Observed) -> Iterator[Any]:
    """The metric families of one snapshot."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    rec = seen.recorder
    yield CounterMetricFamily(
        "asyncstream_batches_completed_total",
        "Batches whose outputs ran and whose checkpoint (if any) committed.",
        value=rec.completed,
    )
    yield GaugeMetricFamily(
        "asyncstream_batches_queued",
        "Batches cut by the ticker and not yet run.",
        value=seen.batches_queued,
    )
    for name, hist, what in (
        ("processing", rec.processing, "Seconds each completed batch ran."),
        ("scheduling", rec.scheduling, "Seconds each completed batch waited to start."),
    ):
        yield HistogramMetricFamily(
            f"asyncstream_{name}_delay_seconds",
            what,
            buckets=hist.cumulative(),
            sum_value=hist.sum,
        )
    counter, gauge = CounterMetricFamily, GaugeMetricFamily
    yield _labelled(
        counter,
        "asyncstream_input_records_total",
        "Records each input stream put into completed batches.",
        ["stream"],
        (((s,), n) for s, n in zip(rec.streams, rec.input_records, strict=True)),
    )
    yield _labelled(
        counter,
        "asyncstream_operator_seconds_total",
        "Seconds each operator and output spent on completed batches.",
        ["operator"],
        (((op,), s) for op, s in rec.operator_seconds.items()),
    )
    yield _labelled(
        gauge,
        "asyncstream_state_keys",
        "State size of each stateful operator: keys (keyed state) or entries (windows).",
        ["operator"],
        (((op,), n) for op, n in seen.state_keys.items()),
    )
    yield _labelled(
        gauge,
        "asyncstream_input_rate_limit",
        "Records/s an input with rate= may take now (absent while not limited).",
        ["stream"],
        (((s,), rate) for s, rate in seen.rates.items() if rate is not None),
    )
    yield _labelled(
        counter,
        "asyncstream_source_errors_total",
        "Bad input each source reported and skipped, by kind.",
        ["source", "kind"],
        sorted(rec.source_errors.items()),
    )
    yield _labelled(
        gauge,
        "asyncstream_source_statistic",
        "Each source's counters as statistics() gives them (lines, bytes, buffered...).",
        ["stream", "name"],
        (((s, k), v) for s, stats in seen.sources.items() for k, v in stats.items()),
    )


def _labelled(
    kind: Any, name: str, doc: str, labels: list[str], rows: Iterable[tuple[tuple[str, ...], float]]
) -> Any:
    """A family of ``kind`` with one sample per ``(label values, value)`` row."""
    family = kind(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(list(values), value)
    return family


class _Collector:
    def __init__(self, observe: Callable[[], Observed]) -> None:
        self._observe = observe

    def collect(self) -> Iterator[Any]:
        return families(self._observe())


def exposition(observe: Callable[[], Observed], accept: str | None = None) -> tuple[bytes, str]:
    """The metrics as bytes, and their content type (OpenMetrics when ``accept`` asks).

    Raises:
        MissingExtraError: ``prometheus_client`` is not installed.
    """
    prometheus = _prometheus()
    from prometheus_client.exposition import choose_encoder

    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(observe))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
