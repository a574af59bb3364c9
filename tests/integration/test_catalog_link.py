"""The catalog over a real broker: a signed snapshot in two parts and then an increment,
published by upstream on the store's catalog topic, change what the bus's catalog-lookup
answers (the price live, with its age and the link online); a catalog document with a bad
price is refused by its place and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from tests.conftest import AgentProcess, wait_for
from tests.integration.test_storelink import doc, linked_agent, publish

TOPIC = "o2o/v1/store-1/all/catalog"
MUG = {
    "sku": "MUG-1",
    "gtin": "4006381333931",
    "name": {"en": "Blue mug"},
    "price": 1299,
    "currency": "EUR",
    "stock": 3,
}
LAMP = {
    "sku": "LAMP-7",
    "gtin": "09506000134352",
    "name": {"en": "Desk lamp"},
    "price": 4500,
    "currency": "EUR",
    "stock": 0,
}


def lookup(tmp_path: Path, **key: str) -> dict[str, Any]:
    with BusClient(tmp_path / "agent.sock") as bus:
        return bus.request({"op": "catalog-lookup", **key})


def test_catalog_documents_over_a_real_broker(
    tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]
) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    part = {"mode": "snapshot", "snapshot": "day-1", "parts": 2}
    publish(mosquitto, TOPIC, doc("catalog", 1, {**part, "part": 1, "products": [MUG]}))
    publish(mosquitto, TOPIC, doc("catalog", 2, {**part, "part": 2, "products": [LAMP]}))
    wait_for(
        lambda: lookup(tmp_path, gtin="9506000134352")["found"],
        20,
        what=lambda: f"the snapshot applied: {agent.status()['link']}",
    )
    mug = lookup(tmp_path, gtin="4006381333931")
    assert mug["product"]["price"] == 1299 and mug["online"] is True and mug["products"] == 2
    assert 0 <= mug["age_s"] < 60
    publish(
        mosquitto,
        TOPIC,
        doc("catalog", 3, {"mode": "increment", "products": [{**MUG, "price": 999}]}),
    )
    wait_for(
        lambda: lookup(tmp_path, sku="MUG-1")["product"]["price"] == 999,
        20,
        what="the increment's price",
    )
    publish(
        mosquitto,
        TOPIC,
        doc("catalog", 4, {"mode": "increment", "products": [{**MUG, "price": "9.99"}]}),
    )
    wait_for(
        lambda: agent.status()["link"]["refused"].get("malformed") == 1,
        20,
        what=lambda: f"the refusal: {agent.status()['link']}",
    )
    assert "products[0].price" in agent.status()["link"]["last_refusal"]
    assert lookup(tmp_path, sku="MUG-1")["product"]["price"] == 999
