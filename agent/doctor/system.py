"""Doctor checks of the machine and the agent: configuration, the broker with the configured
TLS and credentials, the clock, disk space, the outbox, whether the agent is running."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import sqlite3
import ssl
import threading
import time
from urllib.parse import urlsplit

from agent.bus.client import BusClient
from agent.config import Config
from agent.config_checks import identity_problems
from agent.doctor import Finding, fail, ok, skip, warn
from agent.doctor.dirs import dir_problems
from agent.doctor.uplink import uplink_finding
from agent.errors import AgentError
from agent.storedb import read_only_check
from agent.storedb.filecheck import NEWER_SCHEMA
from agent.tlsopts import connect_problem

STA_UNSYNC = 0x0040
MIN_FREE = 100 * 1024 * 1024


def check_store_name(cfg: Config) -> list[Finding]:
    problems = identity_problems(cfg)
    if problems:
        parts = [p.partition("; ") for p in problems]
        return [fail("config-store", " and ".join(p[0] for p in parts),
                     "; ".join(p[2] for p in parts))]
    return [ok("config-store", f"store {cfg.device.store}, device {cfg.device.id}")]


def check_broker(cfg: Config, timeout: float = 5.0) -> list[Finding]:
    m = cfg.mqtt
    if not m.url:
        return [warn("broker", "no [mqtt] url: events are kept in the outbox, not sent",
                     "set [mqtt] url = \"mqtts://HOST:8883\" with ca_file and credentials")]
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.tlsopts import client_tls_context

    parts = urlsplit(m.url)
    tls = parts.scheme == "mqtts"
    host, port = parts.hostname or "", parts.port or (8883 if tls else 1883)
    # its own client id: the running agent's session must not be taken over
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cfg.device.id}-doctor",
                         protocol=mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311)
    if m.username:
        client.username_pw_set(m.username, m.password or None)
    try:
        if tls:
            client.tls_set_context(client_tls_context(m.ca_file, m.cert_file, m.key_file))
    except AgentError as exc:
        return [fail("broker", str(exc), "check [mqtt] ca_file, cert_file and key_file")]
    answered = threading.Event()
    result: list[str] = []

    def on_connect(c: object, u: object, flags: object, rc: object, props: object) -> None:
        result.append(str(rc))
        answered.set()

    client.on_connect = on_connect
    where = f"{host}:{port}"
    try:
        client.connect(host, port, keepalive=10)
    except ssl.SSLCertVerificationError as exc:
        return [fail("broker", f"the broker's certificate at {where} is not trusted "
                     f"({exc.verify_message})", "set [mqtt] ca_file to the CA that signed it")]
    except (OSError, ssl.SSLError) as exc:
        return [fail("broker", f"cannot reach the broker at {where} ({connect_problem(exc, tls)})",
                     "check [mqtt] url, the network and the firewall")]
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return [fail("broker", f"the broker at {where} did not answer in {timeout:g} s",
                         "check the port is MQTT (and TLS for mqtts://)")]
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        client.loop_stop()
    if result and result[0] == "Success":
        return [ok("broker", f"connected to {where} ({'TLS' if tls else 'plaintext'}, MQTT "
                             f"{m.protocol})")]
    return [fail("broker", f"the broker at {where} refused the connection: {result[0]}",
                 "check [mqtt] username/password or the client certificate")]


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("pad", ctypes.c_byte * 200)]


def check_clock() -> list[Finding]:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return [skip("clock", "cannot ask the kernel whether the clock is synchronised")]
    if state == 5 or tx.status & STA_UNSYNC:  # TIME_ERROR
        return [warn("clock", "the clock is not synchronised: event times may be wrong",
                     "enable time sync: timedatectl set-ntp true (or chrony)")]
    return [ok("clock", "the clock is synchronised")]


def check_dirs(cfg: Config) -> list[Finding]:
    problems = dir_problems(cfg)
    if problems:
        return [fail("directories", str(p), f"fix {p.option} in the configuration, or the "
                     "permissions of the path") for p in problems]
    return [ok("directories", "the state and socket directories can be made and written")]


def check_disk(cfg: Config) -> list[Finding]:
    folder = cfg.outbox.path.parent
    probe = folder
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return [skip("disk", f"cannot measure the free space at {probe} ({exc.strerror})")]
    need = max(MIN_FREE, cfg.outbox.max_bytes // 4)
    shown = f"{free / 2**20:,.0f} MiB free on {probe}"
    if free < MIN_FREE:
        return [fail("disk", shown, "free space: the outbox stops taking events when the disk "
                     "is full (journalctl --vacuum-size=100M helps)")]
    if free < need:
        return [warn("disk", shown + f"; the outbox may grow to {cfg.outbox.max_bytes / 2**20:,.0f}"
                     " MiB", "free space or lower [outbox] max_bytes")]
    return [ok("disk", shown)]


def check_outbox(cfg: Config) -> list[Finding]:
    path = cfg.outbox.path
    if not path.exists():
        return [ok("outbox", f"{path} does not exist yet (made at the first start)")]
    if not path.is_file():
        return [fail("outbox", f"{path} is not a file", "set [outbox] path to a file name")]
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            depth = db.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [fail("outbox", f"{path} cannot be read ({exc})",
                     "the agent moves a corrupt file aside at start: restart it "
                     "(systemctl restart o2o-edge)")]
    if verdict != "ok":
        return [fail("outbox", f"{path} is damaged ({verdict})",
                     "restart the agent: it quarantines the file and starts a new one")]
    return [ok("outbox", f"{path}: {depth} events waiting, file intact")]


def check_store_db(cfg: Config) -> list[Finding]:
    """The store database (orders, appointments, loyalty, consent, KPIs): the agent moves a
    damaged one aside at its next start; say so, and what a fresh one lacks."""
    path = cfg.kiosk.store_db
    if not path.exists():
        return [ok("store-db", f"{path} does not exist yet (made at the first start)")]
    verdict = read_only_check(path)  # the store database's owner knows its versions
    if verdict.startswith(NEWER_SCHEMA):
        return [fail("store-db", f"{path} was {verdict}",
                     "install the o2o-edge version that wrote it again, or move the file "
                     "aside to start a fresh one (then import the orders again: o2o-edge "
                     "orders import)")]
    if verdict != "ok":
        return [fail("store-db", f"{path} is damaged ({verdict})",
                     "restart the agent (systemctl restart o2o-edge): it will move the file "
                     "aside and start a fresh one; then import the orders again (o2o-edge orders "
                     "import)")]
    return [ok("store-db", f"{path}: intact")]


def check_agent(cfg: Config) -> list[Finding]:
    try:
        with BusClient(cfg.bus.socket, timeout=5) as bus:
            st = bus.status()
    except AgentError as exc:
        return [warn("agent", str(exc).split(";")[0], "systemctl start o2o-edge")]
    except OSError as exc:  # a socket path that cannot be tried (under a file, not a socket)
        return [fail("agent", f"cannot reach the agent at {cfg.bus.socket} ({exc.strerror})",
                     "check [bus] socket")]
    if st["outbox"].get("writer") == "stopped":  # answering, but storing nothing
        return [fail("agent", f"running (pid {st['agent']['pid']}) but its outbox writer has "
                     f"stopped: nothing is stored ({st['outbox'].get('last_error', '')})",
                     "systemctl restart o2o-edge")]
    # running is not enough: say whether events leave (connected but refused, or stuck)
    return [uplink_finding(st, time.time())]
