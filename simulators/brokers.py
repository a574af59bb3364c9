"""Private MQTT brokers on free loopback ports, for the demo and the tests.

Each broker gets its own directory, port and process so a test can kill, restart or starve it
without touching the machine's own broker.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from simulators.errors import MissingProgram


class BrokerUnavailable(MissingProgram):
    """The broker program is not installed; the message names the Debian package."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _find(program: str, package: str) -> str:
    for candidate in (shutil.which(program), f"/usr/sbin/{program}", f"/usr/bin/{program}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerUnavailable(f"{program} is not installed (apt-get install {package})")


def installed(kind: type[PrivateBroker]) -> bool:
    """Whether this machine has the program behind `kind`."""
    try:
        _find(kind.program, kind.package)
    except BrokerUnavailable:
        return False
    return True


class PrivateBroker:
    """Base: a broker process with a config file in `workdir`."""

    program = ""
    package = ""
    start_timeout = 20.0  # seconds until the port must be open

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.exe = _find(self.program, self.package)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "broker.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None

    def start(self, timeout: float | None = None) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed program, our own arguments
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True, env=self.environment(),
            )
        try:
            wait_port("127.0.0.1", self.port, timeout)
        except TimeoutError:
            self.kill()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"{self.program} did not start on port {self.port}:\n{tail}"
            ) from None

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # the whole process group: some brokers are a script around the real server
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: what a crash or power cut does to the broker."""
        self._signal(signal.SIGKILL, 5)

    def stop(self) -> None:
        """SIGTERM: the broker saves its state first."""
        self._signal(signal.SIGTERM, 15)

    def restart(self, hard: bool = False) -> None:
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrivateMosquitto(PrivateBroker):
    program = "mosquitto"
    package = "mosquitto"

    def __init__(
        self, workdir: Path, port: int | None = None, extra_conf: str = "",
        persistence: bool = True,
    ) -> None:
        super().__init__(workdir, port)
        self.extra_conf = extra_conf
        self.persistence = persistence

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            # started as root, mosquitto drops to user "mosquitto", which cannot write its
            # persistence file here: stay the user who started it
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 30",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            self.extra_conf,
        ]
        conf.write_text("\n".join(lines) + "\n")
        return [self.exe, "-c", str(conf)]


class PrivateNats(PrivateBroker):
    """nats-server with JetStream file storage and its MQTT listener (MQTT 3.1.1 only)."""

    program = "nats-server"
    package = "nats-server"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.client_port = free_port()

    def command(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        store = self.workdir / "js"
        conf.write_text(
            f'server_name: "edge-test-{self.port}"\n'
            f"listen: 127.0.0.1:{self.client_port}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            # QoS 1 redelivery to subscribers after a crash: 30 s by default, too slow for tests
            f"mqtt {{ listen: 127.0.0.1:{self.port}, ack_wait: \"2s\" }}\n"
        )
        return [self.exe, "-c", str(conf)]


class PrivateRabbitMQ(PrivateBroker):
    """A private RabbitMQ node with its MQTT plugin (RabbitMQ 3.10 speaks MQTT 3.1.1).

    Its own node name, ports, data and log directories and cookie, so it runs beside the
    machine's RabbitMQ without touching it.
    """

    program = "rabbitmq-server"
    package = "rabbitmq-server"
    start_timeout = 120.0  # an Erlang node takes its time to boot

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        # Debian's /usr/sbin wrapper switches to the rabbitmq user and its directories;
        # the real script runs the node as whoever starts it, with the paths given here
        inner = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if inner.exists():
            self.exe = str(inner)
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.node = f"o2o{self.port}@localhost"

    def command(self) -> list[str]:
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
        )
        return [self.exe]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbit.pid"),
            "HOME": str(self.workdir),
        }


    def queues(self) -> str:
        """`rabbitmqctl list_queues` of this node (name, messages ready and unacknowledged,
        consumers): what a failing test reports about where messages went."""
        ctl = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
        try:
            res = subprocess.run(  # noqa: S603 - fixed program, our own arguments
                [str(ctl), "-n", self.node, "list_queues", "name", "messages_ready",
                 "messages_unacknowledged", "consumers"],
                env=self.environment(), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"rabbitmqctl failed: {exc}"
        return (res.stdout + res.stderr).strip()
