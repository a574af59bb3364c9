"""Staff alerts while the store's link to its broker is cut: the real agent behind the
simulators' cuttable loopback link to a private mosquitto. With nothing crossing the link, a
shopper's call at the kiosk (a bus client) raises an alert that staff (another bus client)
list and acknowledge, and the kiosk hears the answer (the ack event on the bus stream);
nothing of it reaches upstream until the link is back, and then all of it does, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agent.bus.client import AsyncBusClient, BusClient
from agent.contracts.alerts import token_digest
from simulators.brokers import PrivateBroker
from simulators.netcut import NetworkCut
from tests.conftest import AgentProcess, wait_for, write_config
from tests.integration.conftest import Subscriber, next_event

LOCAL_WITHIN_S = 10  # the store hears its staff without the internet: well inside this
TOKEN = "staff-bus-token-of-the-cut-test"  # the staff view's; the agent holds its digest


async def call_and_answer_locally(sock: Path) -> dict[str, str]:
    """The kiosk calls, staff acknowledge, the kiosk hears it: the ids of what was emitted."""
    kiosk = await AsyncBusClient.connect(sock)
    follow = await AsyncBusClient.connect(sock)  # a subscribed connection only streams
    staff = await AsyncBusClient.connect(sock)
    try:
        stream = await follow.subscribe()  # the kiosk follows its call on the bus stream
        [call_id] = await kiosk.emit([{"type": "o2o.kiosk.assist", "data": {"screen": "home"}}])
        raised = await next_event(stream, "o2o.staff.alert", lambda d: d["cause"] == call_id,
                                  within=LOCAL_WITHIN_S)
        alert_id = raised["data"]["alert"]
        listed = await staff.request({"op": "alerts", "token": TOKEN})
        [alert] = [a for a in listed["alerts"] if a["id"] == alert_id]
        assert alert["state"] == "open" and alert["kind"] == "call-staff"
        ack = await staff.request({"op": "alert-ack", "id": alert_id, "by": "Anna",
                                   "token": TOKEN})
        assert ack["outcome"] == "acknowledged"
        acked = await next_event(stream, "o2o.staff.alert.acknowledged",
                                 lambda d: d["alert"] == alert_id, within=LOCAL_WITHIN_S)
        assert acked["data"]["by"] == "Anna"
        return {"call": call_id, "alert": raised["id"], "ack": acked["id"]}
    finally:
        for client in (kiosk, follow, staff):
            await client.close()


def test_a_call_is_raised_acknowledged_and_heard_in_the_store_while_the_link_is_cut(
        tmp_path: Path, mosquitto: PrivateBroker, subscribers: list[Subscriber],
        agent_factory: list[AgentProcess]) -> None:
    host, port = mosquitto.url.split("//", 1)[1].rsplit(":", 1)
    link = NetworkCut(host, int(port)).start()
    try:
        upstream = Subscriber(mosquitto.url, "o2o/v1/store-1/dev-1/events", "collector-cut")
        subscribers.append(upstream)
        assert upstream.connected.wait(10), upstream.health()
        cfg = write_config(tmp_path / "config.toml", url=link.url,
                           extra=f"keepalive_s = 5\nack_timeout_s = 5\n\n"
                                 f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n\n'
                                 f'[staff]\nbus_tokens = ["{token_digest(TOKEN)}"]\n')
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()

        def uplink() -> str:
            with BusClient(agent.socket, timeout=5) as bus:
                return str(bus.status()["uplink"]["state"])

        wait_for(lambda: uplink() == "connected", 30, what="the uplink connected")

        link.cut()  # from here nothing crosses, either way, until restored
        # the agent finds out by itself (keepalive), as behind a broken store router: the
        # call is made with the uplink down, not into a connection that still looks alive
        wait_for(lambda: uplink() != "connected", 30, what="the agent noticing the cut")
        t0 = time.monotonic()
        ids = asyncio.run(call_and_answer_locally(agent.socket))
        local_s = time.monotonic() - t0
        print(f"call -> alert -> ack -> kiosk hears it, link cut: {local_s * 1000:.0f} ms")
        assert not {ids["call"], ids["alert"], ids["ack"]} & upstream.unique(), \
            "an event crossed a cut link"

        link.restore()
        wait_for(lambda: {ids["call"], ids["alert"], ids["ack"]} <= upstream.unique(), 60,
                 what="the call, the alert and its ack upstream after the link is back")
        # at least once, not exactly once: a batch in flight when the link was cut lost its
        # PUBACK and is sent again after it (the upstream drops a repeated id), so a repeat of
        # an event from before the cut is no fault here
        events = upstream.events
        assert events[ids["alert"]]["type"] == "o2o.staff.alert"
        assert events[ids["ack"]]["type"] == "o2o.staff.alert.acknowledged"
        assert events[ids["ack"]]["data"]["by"] == "Anna"
        assert agent.stop() == 0
    finally:
        link.stop()
