"""The fleet CA's answer service (`o2o-edge enroll answer`), attacked by what devices publish
on their request topics: garbage, a 10 MB PEM, a request for another device, a key of a kind
the library cannot read, an Ed25519 or DSA key. What a fleet relies on: each is refused in
one line and answered with nothing; the service keeps running and signs the next good request
(one device must not stop every other device's renewal)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519
from cryptography.x509.oid import NameOID

from agent.enroll.ca import issue
from agent.enroll.certs import new_request
from simulators.pki import TestCA
from tests.conftest import CLI, ROOT, wait_for


def ca_key_file(ca: TestCA, where: Path) -> Path:
    key = where / "ca.key"
    key.write_bytes(ca.key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return key


def request_with(key: Any, cn: str) -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, algorithm).public_bytes(serialization.Encoding.PEM))


def unknown_key_request(cn: str) -> bytes:
    """A request whose key's algorithm is an OID no library knows."""
    der = x509.load_pem_x509_csr(new_request(cn)[1]).public_bytes(serialization.Encoding.DER)
    ec_public_key = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1
    assert der.count(ec_public_key) == 1
    der = der.replace(ec_public_key, bytes.fromhex("06072a8648ce3d0209"))
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


def hostile_requests() -> dict[str, tuple[bytes, str]]:
    return {
        "garbage": (b"\x00\xffnot a request", "not a PEM certificate signing request"),
        "PEM bomb": (b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * 10_000_000
                     + b"\n-----END CERTIFICATE REQUEST-----\n",
                     "not a PEM certificate signing request"),
        "another device": (new_request("store-1/dev-2")[1], "came from 'store-1/dev-1'"),
        "unknown key": (unknown_key_request("store-1/dev-1"), "key"),
        "ed25519": (request_with(ed25519.Ed25519PrivateKey.generate(), "store-1/dev-1"),
                    "neither EC nor RSA"),
        "dsa": (request_with(dsa.generate_private_key(1024),  # noqa: S505 - to be refused
                             "store-1/dev-1"),
                "neither EC nor RSA"),
    }


@pytest.mark.parametrize("name", list(hostile_requests()))
def test_a_hostile_request_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    ca = TestCA(tmp_path / "ca")
    raw, says = hostile_requests()[name]
    with pytest.raises(ValueError, match=says):
        issue(raw, ca.cert, ca.key, 90, expect="store-1/dev-1")


def test_the_answer_service_refuses_hostile_requests_and_goes_on(
        tmp_path: Path, mosquitto: Any) -> None:
    ca = TestCA(tmp_path / "ca")
    log = tmp_path / "answer.log"
    certs: dict[str, bytes] = {}
    lock = threading.Lock()

    def heard(c: Any, u: Any, msg: Any) -> None:
        with lock:
            certs[msg.topic] = bytes(msg.payload)

    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-1")
    device.on_message = heard
    device.connect("127.0.0.1", mosquitto.port)
    device.subscribe("o2o/v1/+/+/cert", qos=1)
    device.loop_start()
    with log.open("wb") as out:
        answerer = subprocess.Popen(
            [*CLI, "enroll", "answer", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}",
             "--ca-cert", str(ca.ca_file), "--ca-key", str(ca_key_file(ca, tmp_path))],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: "waiting for requests" in log.read_text(), 30,
                 what=lambda: log.read_text())
        hostile = hostile_requests()
        for raw, _ in hostile.values():
            device.publish("o2o/v1/store-1/dev-1/csr", raw, qos=1).wait_for_publish(10)
        good = new_request("store-1/dev-1")[1]
        device.publish("o2o/v1/store-1/dev-1/csr", good, qos=1).wait_for_publish(10)
        wait_for(lambda: "signed store-1/dev-1" in log.read_text(), 30,
                 what=lambda: f"the good request signed: {log.read_text()[-2000:]}")
        time.sleep(0.2)  # the retained certificate on its way to the subscriber
        assert answerer.poll() is None, log.read_text()[-2000:]
    finally:
        answerer.terminate()
        answerer.wait(10)
        device.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        device.loop_stop()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    refused = [ln for ln in text.splitlines() if ln.startswith("refused store-1/dev-1")]
    assert len(refused) == len(hostile), text[-3000:]
    for (_, says), line in zip(hostile.values(), refused, strict=True):
        assert says in line, (says, line)
    with lock:
        (cert,) = certs.values()
    signed = x509.load_pem_x509_certificate(cert)
    assert signed.public_key() == x509.load_pem_x509_csr(good).public_key()
