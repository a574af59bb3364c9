"""A 3-node NATS cluster with JetStream and MQTT on every node, on free loopback ports.

The fleet's upstream as a retailer would run it: every node takes MQTT clients, the MQTT
streams (sessions, messages, retained) are replicated on all three nodes (R3), so one node
lost — SIGKILLed, its disk intact or not — leaves the other two with a quorum and every
message either of them acknowledged. Each node is a `PrivateBroker`, so a test kills,
restarts or stops one node the way it does a single broker.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from simulators.brokers import PrivateBroker, free_port, wait_port

CLUSTER_NAME: Final = "o2o-fleet"
# QoS 1 redelivery to a subscriber that did not acknowledge (a collector killed mid-batch):
# NATS' default is 30 s; 2 s keeps the tests short and is what the fleet row recommends
# with collectors that acknowledge after their commit.
ACK_WAIT: Final = "2s"
# How many QoS 1 messages NATS sends a subscriber before its acknowledgements: the window a
# collector batches its inserts over.
MAX_ACK_PENDING: Final = 1000


class NatsNode(PrivateBroker):
    """One node: client, route, MQTT and monitoring ports of its own, JetStream on disk."""

    program = "nats-server"
    package = "nats-server"
    start_timeout = 30.0

    def __init__(self, workdir: Path, name: str, route_port: int, replicas: int) -> None:
        super().__init__(workdir)
        self.name = name
        self.client_port = free_port()
        self.route_port = route_port
        self.http_port = free_port()
        self.replicas = replicas
        self.routes: list[int] = []  # the other nodes' route ports, set by the cluster

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes)
        conf.write_text(
            f'server_name: "{self.name}"\n'
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n'
            f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{self.route_port}\n"
            f"  routes: [{routes}]\n}}\n"
            # the MQTT streams and each session's consumer replicated on `replicas` nodes
            f"mqtt {{\n  listen: 127.0.0.1:{self.port}\n  ack_wait: \"{ACK_WAIT}\"\n"
            f"  max_ack_pending: {MAX_ACK_PENDING}\n"
            f"  stream_replicas: {self.replicas}\n  consumer_replicas: {self.replicas}\n}}\n"
        )
        return [self.exe, "-c", str(conf)]

    def healthy(self) -> bool:
        """JetStream on this node is up and in contact with the cluster's meta leader. Only the
        server: after a node loss each node's own retained-messages consumer stays "not
        current" for a long while, which MQTT clients do not wait for."""
        try:
            with urllib.request.urlopen(  # our own loopback monitoring port
                    f"http://127.0.0.1:{self.http_port}/healthz?js-server-only=true",
                    timeout=2) as res:
                return bool(json.loads(res.read()).get("status") == "ok")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def start(self, timeout: float | None = None) -> None:
        super().start(timeout)
        wait_port("127.0.0.1", self.http_port, 10)

    def messages(self) -> str:
        """The MQTT message stream and each session's consumer as this node sees them
        (stored, pending, unacknowledged, delivered, acknowledged up to, leader): what a
        failing test reports about where messages went."""
        try:
            with urllib.request.urlopen(  # our own loopback monitoring port
                    f"http://127.0.0.1:{self.http_port}/jsz?streams=true&consumers=true",
                    timeout=5) as res:
                doc = json.loads(res.read())
        except (OSError, ValueError, urllib.error.URLError) as exc:
            return f"{self.name}: {exc}"
        parts = []
        for account in doc.get("account_details", []):
            for stream in account.get("stream_detail", []):
                if stream.get("name") != "$MQTT_msgs":
                    continue
                state = stream.get("state", {})
                parts.append(f"stream {state.get('messages')} stored, last "
                             f"{state.get('last_seq')}")
                for c in stream.get("consumer_detail", []):
                    parts.append(
                        f"consumer {c.get('name')}: pending {c.get('num_pending')}, unacked "
                        f"{c.get('num_ack_pending')}, redelivered {c.get('num_redelivered')}, "
                        f"delivered {c.get('delivered', {}).get('stream_seq')}, acked to "
                        f"{c.get('ack_floor', {}).get('stream_seq')}, leader "
                        f"{c.get('cluster', {}).get('leader')}")
        return f"{self.name}: " + "; ".join(parts)


class NatsCluster:
    """Three (or `size`) NATS nodes routed to each other; MQTT on every node."""

    def __init__(self, workdir: Path, size: int = 3, replicas: int = 3) -> None:
        if not 1 <= replicas <= size:
            raise ValueError(f"replicas {replicas}: 1 to the cluster size {size}")
        self.workdir = workdir
        route_ports = [free_port() for _ in range(size)]
        self.nodes = [NatsNode(workdir / f"n{i + 1}", f"n{i + 1}", route_ports[i], replicas)
                      for i in range(size)]
        for node in self.nodes:
            node.routes = [p for p in route_ports if p != node.route_port]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every running node says JetStream is current (a meta leader elected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.proc is not None]
            if running and all(n.healthy() for n in running):
                return
            time.sleep(0.2)
        states = {n.name: n.healthy() for n in self.nodes if n.proc is not None}
        raise TimeoutError(f"NATS cluster not healthy after {timeout}s: {states}")

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def messages(self) -> str:
        """`NatsNode.messages` of every running node."""
        return "\n".join(n.messages() for n in self.nodes if n.proc is not None)

    def restart(self, index: int, hard: bool = True) -> None:
        node = self.nodes[index]
        if node.proc is not None:
            node.kill() if hard else node.stop()
        node.start()
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
