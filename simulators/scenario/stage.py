"""The simulated store a scenario plays on: a private broker behind a cuttable link, a private
D-Bus with the fake BlueZ, the nfcpy UDP tag emulator, the network camera, a state
directory (a small tmpfs of its own when the scenario fills the disk), a wall-clock offset
file, the agent as a child process configured for all of it, and the reference collector.

Everything is started by `Stage.start()` and stopped by `Stage.stop()`, whatever state it
is in; nothing outlives the stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bus.client import BusClient
from agent.contracts.alerts import token_digest
from agent.contracts.status import Status
from agent.errors import AgentError
from agent.keys import public_key_text
from agent.statepaths import StatePaths, state_dir
from simulators.bluez_player import FakeBlueZThread
from simulators.brokers import PrivateBroker, PrivateMosquitto, PrivateNats, PrivateRabbitMQ
from simulators.camera_stream import CameraStream
from simulators.fake_bluez import BusUnavailable, PrivateBus
from simulators.netcut import NetworkCut
from simulators.nfc_tags import TagEmulator, free_udp_port
from simulators.pos import free_tcp_port
from simulators.scenario.model import BOOKED_AFTER_S, ESCALATE_AFTER_S, Scenario, ScenarioError
from simulators.sockpath import fitting_socket

BROKERS: dict[str, tuple[type[PrivateBroker], str]] = {
    "mosquitto": (PrivateMosquitto, "5"),
    "nats": (PrivateNats, "3.1.1"),
    "rabbitmq": (PrivateRabbitMQ, "3.1.1"),
}
CLOCKSHIFT = Path(__file__).resolve().parent.parent / "clockshift"
DISK_MB = 24


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(AgentError, OSError, KeyError):
            if pred():
                return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Stage:
    def __init__(self, sc: Scenario, workdir: Path,
                 broker: str | PrivateBroker = "mosquitto") -> None:
        """`broker`: a private one started here (mosquitto, nats, rabbitmq), one of ours
        already running (a PrivateBroker: used, not stopped at the end), a running one
        (mqtt://HOST:PORT, MQTT 5) or "none" (the agent buffers, nothing is collected)."""
        self.sc = sc
        self.dir = workdir
        self.owns_broker = not isinstance(broker, PrivateBroker)
        self.broker: PrivateBroker | None = None
        if isinstance(broker, PrivateBroker):
            self.broker = broker
            broker = next(k for k, (cls, _) in BROKERS.items() if isinstance(self.broker, cls))
        if broker not in BROKERS and broker != "none" and not broker.startswith("mqtt://"):
            raise ScenarioError(f"broker {broker!r}: one of {', '.join(BROKERS)}, "
                                "mqtt://HOST:PORT or none")
        self.broker_kind = broker
        self.protocol = BROKERS[broker][1] if broker in BROKERS else "5"
        self.broker_url = broker if broker.startswith("mqtt://") else ""
        self.state = workdir / "state"  # the agent's files (a tmpfs for the disk-full fault)
        # the agent's state directory is in there too (remote configuration), not the
        # user's own: the agent's files placed by the agent's own rules (agent/statepaths.py)
        self.state_env = {"XDG_STATE_HOME": str(self.state)}
        self.paths = StatePaths(state_dir(self.state_env), store_db=self.state / "store.db",
                                outbox=self.state / "outbox.db")
        self.cfg_path = workdir / "config.toml"
        self.bus_socket, self._short_dir = fitting_socket(workdir / "agent.sock", "o2o-stage-")
        self.clock_file = workdir / "clock-offset"
        self.collector_db = workdir / "collector.db"
        self.pickup_key = Ed25519PrivateKey.generate()
        self.staff_token = secrets.token_urlsafe(32)  # the simulated staff view's bus token
        self.link_key = Ed25519PrivateKey.generate()  # upstream's: signs consent documents
        self.offer_key = Ed25519PrivateKey.generate()  # the campaigns': signs offer codes
        self.pos_token = secrets.token_urlsafe(32)  # the till's (simulators/pos.py)
        self.pos_port = free_tcp_port() if sc.sales else 0
        self._doc_versions: dict[str, int] = {}
        self.link: NetworkCut | None = None
        self.dbus: PrivateBus | None = None
        self.bluez: FakeBlueZThread | None = None
        self.nfc_port = free_udp_port()
        self.nfc: TagEmulator | None = None
        self.camera: CameraStream | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.collector: subprocess.Popen[bytes] | None = None
        self.tmpfs = False
        self.clock_offset = 0.0
        self.notes: list[str] = []  # what this machine cannot simulate
        # called once, just before the agent is stopped (the soak samples it a last time)
        self.before_agent_stops: Callable[[], None] | None = None

    # --- start ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(exist_ok=True)
        if self.sc.faults_of("disk-full"):
            self._mount_tmpfs()
        self.clock_file.write_text("0\n")
        if self.broker is None and self.broker_kind in BROKERS:
            (self.dir / "broker").mkdir(exist_ok=True)
            self.broker = BROKERS[self.broker_kind][0](self.dir / "broker")
            self.broker.start()
        if self.broker is not None:
            self.broker_url = self.broker.url
        if self.broker_url:
            parts = urlsplit(self.broker_url)
            self.link = NetworkCut(parts.hostname or "127.0.0.1", parts.port or 1883).start()
        try:
            self.dbus = PrivateBus(self.dir)
        except BusUnavailable as exc:
            self.notes.append(f"no beacons: {exc}")
        else:
            self.dbus.start()
            self.bluez = FakeBlueZThread(self.dbus.address)
            self.bluez.__enter__()
        self.nfc = TagEmulator(self.nfc_port).start()
        self.camera = CameraStream().start()
        self._seed_orders()
        self.write_config()
        if self.broker_url:
            self.start_collector()
        self.start_agent()

    def _mount_tmpfs(self) -> None:
        if os.geteuid() != 0:
            raise ScenarioError("the disk-full fault needs a private tmpfs for the agent's "
                                "state: run as root, or remove the fault")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700",  # noqa: S603,S607
                              "o2o-scenario", str(self.state)], capture_output=True, text=True,
                             check=False)
        if res.returncode != 0:
            raise ScenarioError(f"cannot mount a tmpfs for the disk-full fault: "
                                f"{res.stderr.strip()}")
        self.tmpfs = True

    def _seed_orders(self) -> None:
        from agent.checkin import StoreDb

        db = StoreDb(self.paths.store_db)
        db.replace("orders", [{"order_id": o.id, "code": o.code, "first_name": o.first_name,
                               "status": "ready", "eta_min": o.eta_min,
                               "store": self.sc.store} for o in self.sc.orders.values()])
        if self.sc.appointments:
            # booked on the agent's clock, which is not sped up: an appointment's time is
            # where its store time falls from now, so its shopper is never too early
            now, speed = time.time(), self.sc.speed
            db.replace("appointments", [
                {"appt_id": a.id, "code": a.code, "first_name": a.first_name,
                 "service": a.service, "at": now + (a.at + BOOKED_AFTER_S) / speed}
                for a in self.sc.appointments])
        cards = [{"card": t.uid, "first_name": t.holder, "points": t.points}
                 for t in self.sc.tags.values() if t.role == "loyalty" and t.holder]
        if cards:
            db.replace("loyalty", cards)
        db.close()

    def write_config(self) -> None:
        sc = self.sc
        shelf = [f"{t.uid}={t.name}" for t in sc.tags.values() if t.role == "shelf"]
        cards = [f"{t.uid}={t.name}" for t in sc.tags.values() if t.role == "loyalty"]
        targets = ["106A"] + (["212F"] if any(t.type == "felica" for t in sc.tags.values())
                              else [])
        beacons = [f"eddystone-uid:{b.namespace}:{b.instance}" for b in sc.beacons]
        # beacon health in the scenario's time: one report per store hour
        health_s = max(1.0, 3600 / sc.speed)
        link_url = self.link.url if self.link else ""
        config: dict[str, dict[str, Any]] = {
            "device": {"store": sc.store, "id": sc.device},
            "outbox": {"path": str(self.paths.outbox), "max_bytes": 8 * 1024 * 1024},
            "mqtt": {"url": link_url, "protocol": self.protocol, "keepalive_s": 5,
                     "ack_timeout_s": 5, "backoff_min_s": 0.2, "backoff_max_s": 2,
                     # on a broker that is not ours, leave no session behind for long
                     **({"session_expiry_s": 120} if self.foreign_broker else {})},
            "bus": {"socket": str(self.bus_socket)},
            "metrics": {"listen": "", "telemetry_interval_s": 0},
            "ble": {"enabled": self.bluez is not None, "beacons": beacons,
                    "app_uuids": [sc.app_uuid], "health_interval_s": health_s,
                    "silent_after_s": max(30.0, 4 * health_s)},
            "nfc": {"enabled": True, "reader": f"udp:127.0.0.1:{self.nfc_port}",
                    "targets": targets, "debounce_s": 0.3, "shelf_tags": shelf,
                    "loyalty_cards": cards},
            "qr": {"enabled": True, "camera": self.camera.url if self.camera else "",
                   "domains": ["shop.example"],
                   "pickup_public_keys": [public_key_text(self.pickup_key.public_key())],
                   "offer_public_keys": [public_key_text(self.offer_key.public_key())],
                   "debounce_s": 1.0},
            "link": {"public_keys": [public_key_text(self.link_key.public_key())]},
            "kiosk": {"store_db": str(self.paths.store_db), "idle_s": 600,
                      "idle_warning_s": 30},
            "staff": {"escalate_after_s": ESCALATE_AFTER_S,
                      "bus_tokens": [token_digest(self.staff_token)]},
        }
        if sc.sales:  # the till posts on the loopback only; [pos] keeps its token's SHA-256
            digest = hashlib.sha256(self.pos_token.encode()).hexdigest()
            config["pos"] = {"enabled": True, "listen": [f"127.0.0.1:{self.pos_port}"],
                             "tokens": [f"till-1={digest}"]}
        # a real TOML writer: a path or a name with a quote or a backslash stays what it is
        self.cfg_path.write_text(tomli_w.dumps(config), encoding="utf-8")

    def agent_env(self) -> dict[str, str]:
        path = os.pathsep.join([str(CLOCKSHIFT), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env = {**os.environ, **self.state_env, "PYTHONPATH": path,
               "O2O_SIM_CLOCK_FILE": str(self.clock_file)}
        if self.dbus is not None:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.dbus.address
        return env

    def start_agent(self) -> None:
        with (self.dir / "agent.log").open("ab") as log:
            self.agent = subprocess.Popen(  # noqa: S603 - our own program
                [sys.executable, "-m", "agent.cli.main", "run", "--config", str(self.cfg_path)],
                stdout=log, stderr=subprocess.STDOUT, env=self.agent_env())

        def ready() -> bool:
            assert self.agent is not None
            if self.agent.poll() is not None:
                raise ScenarioError("the agent exited: "
                                    + (self.dir / "agent.log").read_text()[-2000:])
            st = self.status()
            return bool((self.bluez is None or st["ble"]["scanner"]["state"] == "scanning")
                        and st["nfc"]["reader"]["state"] == "ready"
                        and st["qr"]["camera"]["state"] == "capturing"
                        and (not self.link or st["uplink"]["state"] == "connected"))

        _wait(ready, 60, "the agent's touchpoints and uplink")

    def start_collector(self) -> None:
        with (self.dir / "collector.log").open("ab") as log:
            self.collector = subprocess.Popen(  # noqa: S603 - our own program
                [sys.executable, "-m", "agent.cli.main", "collect", "--broker",
                 self.broker_url, "--db", f"sqlite:///{self.collector_db}",
                 "--client-id", f"scenario-collector-{os.getpid()}-{id(self)}",
                 "--protocol", self.protocol,
                 "--topic", f"o2o/v1/{self.sc.store}/{self.sc.device}/events",
                 # on a broker that is not ours, leave no session behind for long
                 "--session-expiry", "86400" if self.broker else "120"],
                stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        if self.collector.poll() is not None:
            raise ScenarioError("the collector exited: "
                                + (self.dir / "collector.log").read_text()[-2000:])

    # --- while running -------------------------------------------------------------------

    def status(self) -> Status:
        with BusClient(self.bus_socket, timeout=10) as c:
            return c.status()

    def publish_doc(self, kind: str, body: Any, timeout: float = 60) -> None:
        """What upstream does: a signed document for this store, retained, QoS 1, straight to
        the broker (not over the store's link, which may be cut); retried while the broker is
        down. Issued a while back so that a clock step on the device does not make it early."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from agent.storelink.docs import sign

        version = self._doc_versions[kind] = self._doc_versions.get(kind, 0) + 1
        now = time.time()
        raw = sign(self.link_key, kind=kind, store=self.sc.store, device="all", version=version,
                   issued=now - 6 * 3600, expires=now + 86400, body=body)
        parts = urlsplit(self.broker_url)
        deadline = time.monotonic() + timeout
        while True:
            client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                 client_id=f"scenario-upstream-{time.monotonic_ns()}",
                                 protocol=mqtt.MQTTv311 if self.protocol == "3.1.1"
                                 else mqtt.MQTTv5)
            try:
                client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
                client.loop_start()
                client.publish(f"o2o/v1/{self.sc.store}/all/{kind}", raw, qos=1,
                               retain=True).wait_for_publish(10)
                return
            except (OSError, RuntimeError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            finally:
                client.loop_stop()
                with contextlib.suppress(Exception):
                    client.disconnect()

    def agent_pid(self) -> int:
        assert self.agent is not None
        return self.agent.pid

    @property
    def foreign_broker(self) -> bool:
        """A running broker named by URL: someone else's, to be left as it was found."""
        return self.broker is None and bool(self.broker_url)

    def clear_retained(self) -> None:
        """Remove what this run left retained on a broker it did not start: the agent's
        birth/death message on its state topic and the documents "upstream" published.
        An empty retained message deletes the retained one (MQTT 3.1.1 and 5)."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        topics = [f"o2o/v1/{self.sc.store}/{self.sc.device}/state",
                  *(f"o2o/v1/{self.sc.store}/all/{kind}" for kind in self._doc_versions)]
        parts = urlsplit(self.broker_url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"scenario-cleanup-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        try:
            client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
            client.loop_start()
            for topic in topics:
                client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()

    # --- stop ----------------------------------------------------------------------------

    def stop_agent(self) -> int:
        if self.before_agent_stops is not None:  # once: the soak's last sample
            hook, self.before_agent_stops = self.before_agent_stops, None
            with contextlib.suppress(Exception):
                hook()
        if self.agent is None or self.agent.poll() is not None:
            return self.agent.returncode if self.agent else 0
        self.agent.terminate()
        try:
            return self.agent.wait(30)
        except subprocess.TimeoutExpired:
            self.agent.send_signal(signal.SIGUSR2)  # its threads' stacks into its log
            time.sleep(1)
            self.agent.kill()
            self.agent.wait(5)
            raise ScenarioError("the agent did not stop within 30 s of SIGTERM; its log ends: "
                                + (self.dir / "agent.log").read_text()[-6000:]) from None

    def stop_collector(self) -> None:
        if self.collector is not None and self.collector.poll() is None:
            self.collector.terminate()
            try:
                self.collector.wait(20)
            except subprocess.TimeoutExpired:
                self.collector.kill()
                self.collector.wait(5)

    def stop(self) -> None:
        steps = [self.stop_agent, self.stop_collector]
        if self.foreign_broker:
            steps.append(self.clear_retained)
        if self.camera is not None:
            steps.append(self.camera.stop)
        if self.nfc is not None:
            steps.append(self.nfc.stop)
        if self.bluez is not None:
            bluez = self.bluez
            steps.append(lambda: bluez.__exit__(None, None, None))
        if self.dbus is not None:
            steps.append(self.dbus.stop)
        if self.link is not None:
            steps.append(self.link.stop)
        if self.broker is not None and self.owns_broker:
            steps.append(self.broker.stop)
        if self.tmpfs:
            steps.append(self._unmount)
        if self._short_dir:
            short = self._short_dir
            steps.append(lambda: shutil.rmtree(short, ignore_errors=True))
        for step in steps:
            with contextlib.suppress(Exception):
                step()
        self.agent = self.collector = None
        self.camera = self.nfc = self.bluez = self.dbus = self.link = self.broker = None

    def _unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.state)], check=False,  # noqa: S603,S607
                       capture_output=True)
        self.tmpfs = False
