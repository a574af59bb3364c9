"""The catalog over a real broker: a signed snapshot in two parts (named by hash, each a
retained blob) and then an increment, published by upstream on the store's catalog topic,
change what the bus's catalog-lookup answers (the price live, with its age and the link
online); a catalog document with a bad price is refused by its place and changes nothing.
A device that connects after it was all published gets every part and the increment from
what the broker retained: the last catalog document and the blobs it names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from tests.conftest import AgentProcess, wait_for
from tests.integration.test_storelink import doc, linked_agent, publish

TOPIC = "o2o/v1/store-1/all/catalog"
BLOB = "o2o/v1/store-1/all/blob/"
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
    parts = [part(mosquitto, [MUG]), part(mosquitto, [LAMP])]
    publish(mosquitto, TOPIC, doc("catalog", 2, {"mode": "snapshot", "snapshot": "day-1",
                                                 "parts_sha256": parts}))
    wait_for(
        lambda: lookup(tmp_path, gtin="9506000134352")["found"],
        20,
        what=lambda: f"the snapshot applied: {agent.status()['link']}",
    )
    mug = lookup(tmp_path, gtin="4006381333931")
    assert mug["product"]["price"] == 1299 and mug["online"] is True and mug["products"] == 2
    assert 0 <= mug["age_s"] < 60
    catalog = agent.status()["catalog"]
    assert (catalog["products"], catalog["snapshot"], catalog["waiting_parts"]) == (
        2, "day-1", 0)
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


def part(broker: Any, products: list[dict[str, Any]]) -> str:
    """A snapshot's part as upstream publishes it: retained on the blob topic by its hash."""
    raw = json.dumps(products).encode()
    sha = hashlib.sha256(raw).hexdigest()
    publish(broker, BLOB + sha, raw, retain=True)
    return sha


def test_a_device_that_connects_later_gets_every_part_and_the_increment(
    tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]
) -> None:
    """Everything published retained before the device is up: the broker keeps one catalog
    document (the last), which names the snapshot's parts, and the parts by hash."""
    products = [{**MUG, "sku": f"MUG-{i}", "gtin": None} for i in range(3)] + [LAMP]
    parts = [part(mosquitto, products[:2]), part(mosquitto, products[2:])]
    snapshot = {"mode": "snapshot", "snapshot": "day-2", "parts_sha256": parts}
    publish(mosquitto, TOPIC, doc("catalog", 10, snapshot), retain=True)
    publish(mosquitto, TOPIC, doc("catalog", 11, {
        "mode": "increment", "snapshot": "day-2", "parts_sha256": parts,
        "products": [{**LAMP, "price": 3900}], "removed": ["MUG-0"]}), retain=True)
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    wait_for(
        lambda: lookup(tmp_path, sku="LAMP-7")["found"],
        20,
        what=lambda: f"the catalog from what was retained: {agent.status()['link']}",
    )
    lamp = lookup(tmp_path, gtin="9506000134352")
    assert lamp["product"]["price"] == 3900 and lamp["products"] == 3
    assert lookup(tmp_path, sku="MUG-0")["found"] is False
    assert lookup(tmp_path, sku="MUG-2")["found"] is True  # from the second part
    st = agent.status()
    assert st["catalog"]["snapshot"] == "day-2" and st["catalog"]["version"] == 11
    assert st["link"]["refused"] == {}
