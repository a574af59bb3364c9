"""Certificate renewal, attacked: what arrives on .../cert while the agent waits for the answer
to its request. Garbage, a certificate for another device's name, an expired one, one for
another key, a 10 MB PEM, a chain instead of a leaf, a key the library cannot read. What a
store relies on: the agent keeps the certificate it connects with (nothing is tried that
would not work), says why once however often the broker delivers the same message again (a
retained one comes back at every reconnect), and takes the real answer when it comes."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_config
from agent.enroll import files
from agent.enroll.renewal import Renewal
from simulators.pki import TestCA
from tests.abuse.conftest import ABUSE

TOPIC = "o2o/v1/store-1/dev-1/cert"
NOW = dt.datetime.now(dt.UTC)


class Link:
    """What the renewal sees of the uplink's connection."""

    def __init__(self, cert: str) -> None:
        self.state, self.connects, self.attempts = "connected", 1, 1
        self.client_cert = self.connected_cert = cert
        self.loaded: list[str] = []
        self.last_error = ""

    def use_client_certificate(self, cert_file: str, key_file: str) -> None:
        self.loaded.append(cert_file)
        self.client_cert, self.state = cert_file, "connecting"


class Uplink:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.sent: list[bytes] = []

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        self.sent.append(payload)


def certificate(issuer: TestCA, public_key: Any, cn: str = "store-1/dev-1",
                days: tuple[float, float] = (-1, 90), ca: bool = False) -> x509.Certificate:
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer.cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + dt.timedelta(days=days[0]))
            .not_valid_after(NOW + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer.key, hashes.SHA256()))


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class Device:
    """An enrolled device whose certificate is due, with a renewal request sent."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = TestCA(tmp_path / "ca")
        etc = tmp_path / "etc"
        etc.mkdir()
        self.cert, self.key = etc / "device.pem", etc / "device.key"
        key = ec.generate_private_key(ec.SECP256R1())
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.cert.write_bytes(pem(certificate(self.ca, key.public_key(), days=(-80, 1))))
        cfg = etc / "config.toml"
        cfg.write_text('[device]\nstore = "store-1"\nid = "dev-1"\n[mqtt]\n'
                       'url = "mqtts://broker:8883"\n'
                       f'ca_file = "{self.ca.ca_file}"\ncert_file = "{self.cert}"\n'
                       f'key_file = "{self.key}"\n')
        self.in_use = self.cert.read_bytes()
        self.link = Link(str(self.cert))
        self.uplink = Uplink(self.link)
        self.renewal = Renewal(load_config(str(cfg), {}), self.uplink)

    def pending_key(self) -> Any:
        return serialization.load_pem_private_key(files.pending(self.key).read_bytes(), None)

    def answer(self, raw: bytes, times: int = 1) -> None:
        async def run() -> None:
            for _ in range(times):
                await self.renewal.handle(TOPIC, raw, "", b"")
        asyncio.run(run())

    def take(self, raw: bytes) -> None:
        """The answer tried, and taken by the broker at the first connection with it."""
        async def run() -> None:
            self.link.loaded.clear()
            trial = asyncio.create_task(self.renewal.handle(TOPIC, raw, "", b""))
            while not self.link.loaded:
                assert not trial.done(), self.renewal.last_problem
                await asyncio.sleep(0.01)
            self.link.state, self.link.connected_cert = "connected", self.link.loaded[0]
            await asyncio.wait_for(trial, 5)
        asyncio.run(run())

    def kept_its_certificate(self) -> bool:
        return (self.cert.read_bytes() == self.in_use and not self.link.loaded
                and not files.pending(self.cert).exists())


@pytest.fixture
def device(tmp_path: Path) -> Device:
    dev = Device(tmp_path)
    asyncio.run(dev.renewal._ask())
    assert len(dev.uplink.sent) == 1
    return dev


def unsupported_key_certificate(good: x509.Certificate) -> bytes:
    """The certificate with its key's algorithm an OID no library knows (the signature no
    longer matches: it is never checked before the key is read)."""
    der = good.public_bytes(serialization.Encoding.DER)
    ec_public_key = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1
    assert der.count(ec_public_key) == 1
    der = der.replace(ec_public_key, bytes.fromhex("06072a8648ce3d0209"))
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def hostile_answers(dev: Device) -> dict[str, tuple[bytes, str]]:
    """What may come on the topic, and what the agent says of it ("" nothing: not news)."""
    mine = dev.pending_key().public_key()
    other = TestCA(dev.cert.parent.parent / "other-ca")
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    good = certificate(dev.ca, mine)
    body = b"A" * (10 * 1024 * 1024)
    return {
        "garbage": (b"\x00\xffnot a certificate\x1b[2J", "not a PEM certificate"),
        "empty": (b"", "not a PEM certificate"),
        "other device": (pem(certificate(dev.ca, mine, cn="store-1/dev-2")), "'store-1/dev-2'"),
        "two names": (pem(certificate(dev.ca, mine, cn="store-1/dev-1/x")), "this device is"),
        "expired": (pem(certificate(dev.ca, mine, days=(-30, -1))), "expired on"),
        "not yet valid": (pem(certificate(dev.ca, mine, days=(2, 90))), "valid only from"),
        "another CA": (pem(certificate(other, mine)), "not signed by the CA"),
        "another key": (pem(certificate(dev.ca, stranger)), ""),
        "PEM bomb": (b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n",
                     "not a PEM certificate"),
        "10 MB of certificates": (pem(certificate(dev.ca, stranger)) * 12_000,
                                  "not a PEM certificate"),
        "unknown key type": (unsupported_key_certificate(good), "not a PEM certificate"),
    }


def test_a_hostile_answer_leaves_the_certificate_in_use_said_once(
        device: Device, caplog: pytest.LogCaptureFixture) -> None:
    for name, (raw, says) in hostile_answers(device).items():
        caplog.clear()
        device.renewal.last_problem = ""
        with caplog.at_level(logging.INFO, logger="agent.enroll"):
            device.answer(raw, times=3)  # retained: met again at each reconnect
        assert device.kept_its_certificate(), name
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert not any(r.exc_info for r in caplog.records), name
        if says:
            assert len(warned) == 1 and says in warned[0], (name, warned)
            assert says in device.renewal.last_problem, name
        else:
            assert not warned and not device.renewal.last_problem, (name, warned)
        assert files.pending(device.key).exists(), name  # still waiting for the answer
    good = pem(certificate(device.ca, device.pending_key().public_key()))
    device.take(good)  # the real answer still works after all that
    assert device.cert.read_bytes() == good and device.renewal.renewals == 1


def test_a_chain_with_the_leaf_anywhere_is_taken_for_its_leaf(device: Device) -> None:
    """A CA that answers with its chain (the leaf first or last): the agent tries the
    certificate for its key and keeps only that one as cert_file."""
    for n, leaf_first in enumerate((True, False)):
        leaf = certificate(device.ca, device.pending_key().public_key())
        device.take(pem(leaf, device.ca.cert) if leaf_first else pem(device.ca.cert, leaf))
        assert device.cert.read_bytes() == pem(leaf) and device.renewal.renewals == n + 1
        assert not device.renewal.last_problem
        device.renewal.asked_at = 0.0
        asyncio.run(device.renewal._ask())  # the next renewal's request


@ABUSE
@given(body=st.binary(max_size=600), pem_wrapped=st.booleans(), times=st.integers(1, 3))
def test_any_bytes_on_the_topic_leave_the_certificate_in_use(
        tmp_path_factory: Any, body: bytes, pem_wrapped: bool, times: int) -> None:
    dev = Device(tmp_path_factory.mktemp("dev"))
    asyncio.run(dev.renewal._ask())
    raw = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(body)
           + b"-----END CERTIFICATE-----\n") if pem_wrapped else body
    dev.answer(raw, times)  # raises nothing: the uplink's inbox would log a traceback
    assert dev.kept_its_certificate()
    assert dev.renewal.last_problem.startswith("the certificate on ")
