"""The tills and the catalog on the Prometheus page, from their status sections: sales and
redemptions as counters, the endpoint's refusals by reason (too slow among them), the
catalog's size, parts still to come and the age of its prices."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import commerce_metrics

STATUS: dict[str, Any] = {
    "pos": {"sales": 5, "refunds": 1, "replayed": 2, "conflicts": 1, "refused": 3,
            "offers_redeemed": 2, "offers_refused": 4,
            "endpoint": {"listening": ["0.0.0.0:8470"], "requests": 20, "unauthorized": 6,
                         "limited": 1, "too_large": 0, "slow_clients": 3}},
    "catalog": {"products": 1200, "snapshot": "day-1", "version": 7, "applied_at": 1.0,
                "prices_age_s": {"newest": 60.0, "oldest": 7200.0}, "waiting_parts": 2},
}


class _Collector:
    def __init__(self, st: dict[str, Any]) -> None:
        self.st = st

    def collect(self) -> Any:
        return commerce_metrics(self.st)  # type: ignore[arg-type]


def _page(st: dict[str, Any]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(_Collector(st))  # type: ignore[arg-type]
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_the_tills_and_the_catalog_on_the_page() -> None:
    m = _page(STATUS)
    assert m["o2o_pos_sales_total"] == {(): 5} and m["o2o_pos_offers_refused_total"] == {(): 4}
    refused = {dict(k)["reason"]: v for k, v in m["o2o_pos_requests_refused_total"].items()}
    assert refused == {"invalid": 3, "conflict": 1, "unauthorized": 6, "rate-limited": 1,
                       "too-large": 0, "too-slow": 3}
    assert m["o2o_catalog_products"] == {(): 1200} and m["o2o_catalog_parts_waiting"] == {(): 2}
    ages = {dict(k)["price"]: v for k, v in m["o2o_catalog_price_age_seconds"].items()}
    assert ages == {"newest": 60.0, "oldest": 7200.0}


def test_without_the_endpoint_or_a_catalog() -> None:
    st = {"pos": {**STATUS["pos"]}, "catalog": {**STATUS["catalog"], "prices_age_s": {}}}
    del st["pos"]["endpoint"]
    m = _page(st)
    assert {dict(k)["reason"] for k in m["o2o_pos_requests_refused_total"]} == {
        "invalid", "conflict"}
    assert "o2o_catalog_price_age_seconds" not in m
    assert _page({}) == {}
