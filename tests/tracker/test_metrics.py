"""The metrics facade: counts kept as the code names them, exposed through prometheus-client
in a registry of the service's own, and latency histograms that count every fix of a
batch from a few sampled ones."""

from __future__ import annotations

import prometheus_client
from hypothesis import given, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tracker.metrics import LATENCY_BUCKETS, Metrics, spread


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, by sample name and labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics.render()) for s in family.samples}


def types(metrics: Metrics) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(metrics.render())}


def test_counters_are_exposed_under_the_names_the_code_counts_them_by():
    m = Metrics()
    m.describe("gridwatch_fixes_ingested_total", "Fixes decoded, filtered and placed")
    m.inc("gridwatch_fixes_ingested_total", 256)
    m.inc("gridwatch_fixes_ingested_total", 44)
    m.inc("gridwatch_fixes_filtered_total", reason="speed")
    m.inc("gridwatch_fixes_filtered_total", 2, reason="accuracy")
    m.inc("gridwatch_rejected_total", protocol="handset", reason="bad_json")
    m.gauge("gridwatch_ws_clients", lambda: 3, "WebSocket clients connected")
    assert samples(m) == {
        ("gridwatch_fixes_ingested_total", ()): 300,
        ("gridwatch_fixes_filtered_total", (("reason", "speed"),)): 1,
        ("gridwatch_fixes_filtered_total", (("reason", "accuracy"),)): 2,
        ("gridwatch_rejected_total", (("protocol", "handset"), ("reason", "bad_json"))): 1,
        ("gridwatch_ws_clients", ()): 3,
    }
    assert types(m) == {"gridwatch_fixes_ingested": "counter", "gridwatch_fixes_filtered": "counter",
                        "gridwatch_rejected": "counter", "gridwatch_ws_clients": "gauge"}
    text = m.render()
    assert "# HELP gridwatch_fixes_ingested_total Fixes decoded, filtered and placed\n" in text
    assert "# TYPE gridwatch_fixes_ingested_total counter\n" in text
    assert "_created" not in text
    assert (m.get("gridwatch_fixes_ingested_total"), m.get("gridwatch_fixes_filtered_total", reason="accuracy"),
            m.get("gridwatch_fixes_filtered_total", reason="drift"), m.get("gridwatch_never_counted_total")) == (300, 2, 0, 0)


def test_gauges_are_read_when_scraped():
    m = Metrics()
    depth = [4]
    m.gauge("gridwatch_inbound_queue_depth", lambda: depth[0], "Batches waiting for decode")
    assert samples(m)[("gridwatch_inbound_queue_depth", ())] == 4
    depth[0] = 0
    assert samples(m)[("gridwatch_inbound_queue_depth", ())] == 0


def test_each_service_counts_in_a_registry_of_its_own():
    first, second = Metrics(), Metrics()
    first.inc("gridwatch_messages_total", 7)
    second.inc("gridwatch_messages_total", 2)
    assert samples(first)[("gridwatch_messages_total", ())] == 7
    assert samples(second)[("gridwatch_messages_total", ())] == 2
    assert prometheus_client.REGISTRY.get_sample_value("gridwatch_messages_total") is None


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_label_value_survives_the_exposition(value):
    m = Metrics()
    m.inc("gridwatch_rejected_total", protocol="handset", reason=value)
    assert samples(m) == {("gridwatch_rejected_total", (("protocol", "handset"), ("reason", value))): 1}


def test_a_histogram_counts_each_fix_a_sample_stands_for_and_buckets_at_most_le():
    m = Metrics()
    h = m.histogram("gridwatch_persist_latency_seconds", "Receive to committed")
    now = 1_795_000_000_000
    # three sampled fixes of a batch of ten: 5 ms (exactly a bound), 300 ms and 12 s old
    h.observe_since(now, [now - 5, now - 300, now - 12_000], 10)
    got = samples(m)

    def bucket(le: str) -> float:
        return got[("gridwatch_persist_latency_seconds_bucket", (("le", le),))]

    assert [bucket(le) for le in ("0.005", "0.25", "0.5", "10.0", "+Inf")] == [4, 4, 7, 7, 10]
    assert got[("gridwatch_persist_latency_seconds_count", ())] == 10
    assert abs(got[("gridwatch_persist_latency_seconds_sum", ())] - (4 * 0.005 + 3 * 0.3 + 3 * 12.0)) < 1e-9
    assert len([k for k in got if k[0].endswith("_bucket")]) == len(LATENCY_BUCKETS) + 1
    assert types(m) == {"gridwatch_persist_latency_seconds": "histogram"}
    assert m.histogram("gridwatch_persist_latency_seconds", "Receive to committed") is h


@given(st.integers(0, 100), st.integers(2, 12))
def test_spread_takes_at_most_so_many_including_the_first_and_the_last(n, most):
    items = list(range(n))
    picked = list(spread(items, most))
    assert len(picked) == min(n, most)
    assert picked == sorted(set(picked))
    if n:
        assert (picked[0], picked[-1]) == (0, n - 1)
