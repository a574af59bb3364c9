"""`o2o-edge enroll` against a throwaway CA: the request names the device as the broker ACL
expects (CN STORE/DEVICE), the key stays on the device, the signed certificate is checked
before it replaces anything, and doctor says when it runs out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.cli.main import main
from agent.config import load_config
from agent.doctor.cert import check_certificate
from simulators.pki import TestCA
from tests.ca_signing import sign_request


def config(tmp_path: Path, store: str = "store-1", extra: str = "") -> Path:
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[device]\nstore = "{store}"\nid = "dev-1"\n[mqtt]\n{extra}')
    return path


def request(cfg: Path, capsys: pytest.CaptureFixture[str]) -> bytes:
    assert main(["enroll", "request", "--config", str(cfg)]) == 0
    return capsys.readouterr().out.encode()


def test_request_then_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = TestCA(tmp_path / "ca")
    cfg = config(tmp_path, extra=f'ca_file = "{ca.ca_file}"\n')
    csr_pem = request(cfg, capsys)
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "store-1/dev-1"
    etc = cfg.parent
    assert (etc / "device.csr").read_bytes() == csr_pem
    assert (etc / "device.key.new").stat().st_mode & 0o777 == 0o640
    assert not (etc / "device.key").exists()  # nothing in use is touched before the install
    cert = tmp_path / "signed.pem"
    cert.write_bytes(sign_request(ca, csr_pem))
    assert main(["enroll", "install", str(cert), "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert out.out == (
        f'set in [mqtt]: cert_file = "{etc / "device.pem"}" and key_file = "{etc / "device.key"}"\n'
    )
    assert "restart the agent" in out.err
    assert not (etc / "device.key.new").exists() and (etc / "device.key").exists()
    cfg.write_text(
        cfg.read_text() + f'cert_file = "{etc / "device.pem"}"\nkey_file = "{etc / "device.key"}"\n'
    )
    (finding,) = check_certificate(load_config(str(cfg), {}))
    assert finding.level == "ok" and "for store-1/dev-1, expires on" in finding.message
    assert "(in 89 days)" in finding.message or "(in 90 days)" in finding.message


def test_a_certificate_that_would_not_work_is_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, other_ca = TestCA(tmp_path / "ca"), TestCA(tmp_path / "other", name="other CA")
    cfg = config(tmp_path, extra=f'ca_file = "{ca.ca_file}"\n')
    cert = tmp_path / "signed.pem"

    def install() -> str:
        assert main(["enroll", "install", str(cert), "--config", str(cfg)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
        return captured.err

    cert.write_bytes(b"not a certificate")
    assert "no pending key; run 'o2o-edge enroll request' first" in install()
    first = request(cfg, capsys)
    second = request(cfg, capsys)  # a new request: only its key is pending
    cert.write_bytes(sign_request(ca, first))
    assert "not for this device's pending key" in install()
    wrong_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "store-1/dev-2")])
    cert.write_bytes(sign_request(ca, second, subject=wrong_name))
    assert "names ['store-1/dev-2'], this device is 'store-1/dev-1'" in install()
    cert.write_bytes(sign_request(other_ca, second))
    assert "not signed by the CA in [mqtt] ca_file" in install()
    cert.write_bytes(sign_request(ca, second, days=-0.001))
    assert "the certificate expired on" in install()
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert "not a PEM certificate" in install()
    assert not (cfg.parent / "device.pem").exists() and not (cfg.parent / "device.key").exists()
    cert.write_bytes(sign_request(ca, second))
    assert main(["enroll", "install", str(cert), "--config", str(cfg)]) == 0


def test_a_device_not_yet_named_gets_no_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, store="CHANGE-ME")
    assert main(["enroll", "request", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "store is still the placeholder 'CHANGE-ME'" in err and len(err.splitlines()) == 1
    assert not list(cfg.parent.glob("device.*"))
    cfg = config(tmp_path)
    assert main(["enroll", "request", "--config", str(cfg), "--dir", str(tmp_path / "no")]) == 2
    assert "no such directory; give --dir DIR" in capsys.readouterr().err


def test_doctor_says_when_the_certificate_runs_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = TestCA(tmp_path / "ca")
    cfg = config(tmp_path)
    cert = tmp_path / "etc" / "device.pem"
    cert.write_bytes(sign_request(ca, request(cfg, capsys), days=90))
    cfg.write_text(cfg.read_text() + f'cert_file = "{cert}"\nkey_file = "{cert}"\n')
    loaded = load_config(str(cfg), {})
    now = dt.datetime.now(dt.UTC)
    (soon,) = check_certificate(loaded, now + dt.timedelta(days=80))
    assert soon.level == "warn" and "in 9 days" in soon.message
    assert "o2o-edge enroll request" in soon.fix
    (gone,) = check_certificate(loaded, now + dt.timedelta(days=91))
    assert gone.level == "fail" and "expired on" in gone.message
    other = load_config(str(cfg), {"O2O_EDGE_DEVICE_ID": "dev-2"})
    (named,) = check_certificate(other)
    assert named.level == "warn" and "this device is 'store-1/dev-2'" in named.message
    cert.write_text("garbage")
    (bad,) = check_certificate(loaded)
    assert bad.level == "fail" and "cannot be read as a PEM certificate" in bad.message


def test_the_metrics_page_has_the_certificates_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.metrics import AgentCollector

    ca = TestCA(tmp_path / "ca")
    cert = tmp_path / "device.pem"
    signed = sign_request(ca, request(config(tmp_path), capsys), days=90)
    cert.write_bytes(signed)
    status = {
        "agent": {"version": "1", "store": "s", "device": "d", "uptime_s": 1},
        "outbox": {},
        "uplink": {},
    }
    name = "o2o_mqtt_certificate_expiry_timestamp_seconds"

    def gauges(cert_file: str) -> dict[str, float]:
        families = AgentCollector(lambda: status, cert_file).collect()  # type: ignore[arg-type,return-value]
        return {f.name: f.samples[0].value for f in families if f.samples}

    expires = x509.load_pem_x509_certificate(signed).not_valid_after_utc.timestamp()
    collector = AgentCollector(lambda: status, str(cert))  # type: ignore[arg-type]

    def gauge() -> float:
        return {f.name: f.samples[0].value for f in collector.collect() if f.samples}[name]

    assert gauges(str(cert))[name] == expires == gauge()
    renewals = "o2o_mqtt_certificate_renewals"
    assert renewals not in gauges(str(cert))  # the agent renews nothing here
    status["certificate"] = {"file": str(cert), "expires": expires, "renews_from": None,
                             "renewals": 2, "requested": False, "last_problem": ""}
    assert gauges(str(cert))[renewals] == 2
    # and in the telemetry the fleet gets over MQTT
    from agent.metrics import telemetry

    status["agent"]["bootid"] = "b1"
    assert telemetry(status)["certificate"]["renewals"] == 2  # type: ignore[arg-type]
    # renewed in place by the agent (a new file renamed over it): the page follows
    renewed = sign_request(ca, request(config(tmp_path), capsys), days=180)
    (tmp_path / "renewed.pem").write_bytes(renewed)
    (tmp_path / "renewed.pem").replace(cert)
    assert gauge() == x509.load_pem_x509_certificate(renewed).not_valid_after_utc.timestamp()
    assert name not in gauges("")
    assert name not in gauges(str(tmp_path / "missing.pem"))  # doctor says why


def test_a_renewed_pair_replaces_the_old_one_and_a_cut_is_finished_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """files.promote puts the renewed pair in place keeping the old as .old; a power cut
    between its two renames (the new key in place, its certificate still .new) leaves a pair
    that does not belong together, which files.settle mends before the uplink loads it."""
    import os

    from agent.enroll import files

    ca = TestCA(tmp_path / "ca")
    cfg = config(tmp_path)
    etc = cfg.parent
    cert, key = etc / "device.pem", etc / "device.key"
    cert.write_bytes(sign_request(ca, request(cfg, capsys)))
    os.replace(etc / "device.key.new", key)
    old_cert, old_key = cert.read_bytes(), key.read_bytes()
    new_cert = sign_request(ca, request(cfg, capsys), days=180)
    (etc / "device.pem.new").write_bytes(new_cert)
    files.promote(cert, key)
    assert cert.read_bytes() == new_cert and files.previous(cert).read_bytes() == old_cert
    assert files.previous(key).read_bytes() == old_key
    assert not files.pending(cert).exists() and not files.pending(key).exists()
    assert not files.settle(cert, key)  # a pair that belongs together is left alone
    # the next renewal, cut after its key was put in place
    newer = sign_request(ca, request(cfg, capsys), days=270)
    files.pending(cert).write_bytes(newer)
    os.replace(files.pending(key), key)
    assert files.settle(cert, key)
    assert cert.read_bytes() == newer and not files.pending(cert).exists()
    # a certificate pending with no key that fits it is no half-done renewal: left alone
    files.pending(cert).write_bytes(new_cert)
    assert not files.settle(cert, key) and cert.read_bytes() == newer


def test_doctor_says_when_the_agent_renews(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = TestCA(tmp_path / "ca")
    cfg = config(tmp_path)
    cert = tmp_path / "etc" / "device.pem"
    signed = sign_request(ca, request(cfg, capsys), days=90)
    cert.write_bytes(signed)
    key = tmp_path / "etc" / "device.key.new"
    (tmp_path / "etc" / "device.key").write_bytes(key.read_bytes())
    body = cfg.read_text().replace("[mqtt]\n", '[mqtt]\nurl = "mqtts://broker.example:8883"\n')
    cfg.write_text(body + f'cert_file = "{cert}"\nkey_file = "{tmp_path / "etc" / "device.key"}"\n'
                   "renew_before_days = 20\n")
    loaded = load_config(str(cfg), {})
    expires = x509.load_pem_x509_certificate(signed).not_valid_after_utc
    now = dt.datetime.now(dt.UTC)
    (fine,) = check_certificate(loaded, now)
    assert fine.level == "ok"
    assert f"the agent renews it on {expires - dt.timedelta(days=20):%Y-%m-%d}" in fine.message
    (due,) = check_certificate(loaded, now + dt.timedelta(days=75))
    assert due.level == "warn" and "the agent renews it since" in due.message
    assert "(asked on" in due.message  # the pending key of the request above
    assert "o2o/v1/store-1/dev-1/csr" in due.fix and "o2o/v1/store-1/dev-1/cert" in due.fix
    key.unlink()
    (due,) = check_certificate(loaded, now + dt.timedelta(days=75))
    assert "not asked yet: is the agent connected?" in due.message
    by_hand = load_config(str(cfg), {"O2O_EDGE_MQTT_RENEW_BEFORE_DAYS": "0"})
    (manual,) = check_certificate(by_hand, now)
    assert "renewed by hand" in manual.message


class FakeLink:
    """What the renewal sees of the uplink's connection: which certificate it loaded, which
    one the connection up now was made with, and how many attempts began."""

    def __init__(self, cert: str) -> None:
        self.state, self.connects, self.attempts = "connected", 1, 1
        self.client_cert = self.connected_cert = cert
        self.loaded: list[str] = []
        self.last_error = ""

    def use_client_certificate(self, cert_file: str, key_file: str) -> None:
        self.loaded.append(cert_file)
        self.client_cert, self.state = cert_file, "connecting"


class FakeUplink:
    def __init__(self, link: FakeLink) -> None:
        self.link = link
        self.sent: list[tuple[str, bytes]] = []

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        self.sent.append((topic, payload))


def test_the_renewal_keeps_a_certificate_only_once_the_broker_took_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent's renewal over a stand-in connection: a retained answer to an earlier request
    is no news; the answer to its request is tried and kept once a connection was made with
    it; one the broker does not take within the attempts allowed is dropped, the pair in use
    loaded again."""
    import asyncio

    from agent.enroll import files
    from agent.enroll.renewal import TRIAL_ATTEMPTS, Renewal

    ca = TestCA(tmp_path / "ca")
    cfg = config(tmp_path)
    etc = cfg.parent
    cert, key = etc / "device.pem", etc / "device.key"
    cert.write_bytes(sign_request(ca, request(cfg, capsys), days=1))
    (etc / "device.key.new").rename(key)
    cfg.write_text(cfg.read_text().replace("[mqtt]\n", '[mqtt]\nurl = "mqtts://broker:8883"\n')
                   + f'ca_file = "{ca.ca_file}"\ncert_file = "{cert}"\nkey_file = "{key}"\n')
    loaded = load_config(str(cfg), {})
    link = FakeLink(str(cert))
    uplink = FakeUplink(link)
    topic = "o2o/v1/store-1/dev-1/cert"

    async def scenario() -> None:
        renewal = Renewal(loaded, uplink)
        await renewal._ask()
        ((csr_topic, csr),) = uplink.sent
        assert csr_topic == "o2o/v1/store-1/dev-1/csr"
        # an earlier request's certificate, retained: nothing tried, nothing said
        stale = sign_request(ca, request(cfg, capsys), days=90)
        (etc / "device.key.new").unlink()
        uplink.sent.clear()
        await renewal._ask()  # the request of a key that is pending again
        ((_, csr),) = uplink.sent
        await renewal.handle(topic, stale, "", b"")
        assert link.loaded == [] and not renewal.last_problem
        # the answer: tried, and kept once the broker has taken it
        signed = sign_request(ca, csr, days=90)
        trial = asyncio.create_task(renewal.handle(topic, signed, "", b""))
        while not link.loaded:
            await asyncio.sleep(0.01)
        assert link.loaded == [str(files.pending(cert))]
        link.state, link.connects = "connected", 2
        link.connected_cert = str(files.pending(cert))
        await asyncio.wait_for(trial, 5)
        assert cert.read_bytes() == signed and renewal.renewals == 1
        assert files.previous(cert).exists() and not files.pending(key).exists()
        # the next one, which the broker refuses at every attempt
        uplink.sent.clear()
        renewal.asked_at = 0.0
        await renewal._ask()
        ((_, csr),) = uplink.sent
        refused = sign_request(ca, csr, days=90)
        link.loaded.clear()
        trial = asyncio.create_task(renewal.handle(topic, refused, "", b""))
        while not link.loaded:
            await asyncio.sleep(0.01)
        link.attempts += TRIAL_ATTEMPTS + 1
        link.last_error = "TLS handshake failed"
        await asyncio.wait_for(trial, 5)
        assert link.loaded == [str(files.pending(cert)), str(cert)]  # the pair in use again
        assert cert.read_bytes() == signed
        assert not files.pending(cert).exists() and not files.pending(key).exists()
        assert "did not take the renewed certificate (TLS handshake failed)" in \
            renewal.last_problem

    asyncio.run(scenario())


def ca_files(ca: TestCA, where: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    key = where / "ca.key"
    key.write_bytes(ca.key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return ca.ca_file, key


def test_the_fleet_ca_signs_only_a_request_that_names_a_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`enroll sign`, the CA's side: the device's request signed into a certificate that
    `enroll install` takes; a request naming another device than expected, one whose
    signature does not hold, one naming no STORE/DEVICE, and a CA certificate that is not a
    CA's, each refused in one line."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    ca = TestCA(tmp_path / "ca")
    ca_cert, ca_key = ca_files(ca, tmp_path)
    cfg = config(tmp_path, extra=f'ca_file = "{ca.ca_file}"\n')
    csr = tmp_path / "pi.csr"
    csr.write_bytes(request(cfg, capsys))
    sign = ["enroll", "sign", str(csr), "--ca-cert", str(ca_cert), "--ca-key", str(ca_key)]

    def refused(*extra: str) -> str:
        assert main([*sign, *extra]) == 2
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.splitlines()) == 1, out.err
        return out.err

    assert "names 'store-1/dev-1' but came from 'store-1/dev-2'" in refused(
        "--expect", "store-1/dev-2")
    assert main([*sign, "--expect", "store-1/dev-1", "--days", "30"]) == 0
    out = capsys.readouterr()
    signed = tmp_path / "signed.pem"
    signed.write_text(out.out)
    assert "signed, valid until" in out.err
    cert = x509.load_pem_x509_certificate(signed.read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < dt.timedelta(days=30.01)
    assert main(["enroll", "install", str(signed), "--config", str(cfg)]) == 0
    capsys.readouterr()
    # a request altered after it was signed
    pem = csr.read_bytes()
    der_at = pem.index(b"\n") + 1
    body = bytearray(pem)
    body[der_at + 40] = ord("A") if body[der_at + 40] != ord("A") else ord("B")
    csr.write_bytes(bytes(body))
    err = refused()
    assert "not signed by the key it carries" in err or "not a PEM" in err
    # a request for a laptop, not a device
    key = ec.generate_private_key(ec.SECP256R1())
    laptop = (x509.CertificateSigningRequestBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laptop")]))
              .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization

    csr.write_bytes(laptop.public_bytes(serialization.Encoding.PEM))
    assert "names 'laptop', not STORE/DEVICE" in refused()
    # a device's certificate given as the CA's
    assert main(["enroll", "sign", str(csr), "--ca-cert", str(signed), "--ca-key",
                 str(ca_key)]) == 2
    assert "is not the key of the CA certificate" in capsys.readouterr().err


def test_doctor_says_when_the_agent_could_not_write_its_renewed_certificate(
    tmp_path: Path,
) -> None:
    """Judged as root for the agent's user ("nobody" stands in for o2o-edge here): a
    directory it may not write, then one it may."""
    import os

    from agent.doctor.cert import _unwritable

    if os.geteuid() != 0:
        pytest.skip("judging another user's rights is doctor's way as root only")
    where = tmp_path / "tls"
    where.mkdir(mode=0o755)
    assert _unwritable(where, "nobody") == where  # root's, 0755: not the agent's to write
    where.chmod(0o777)
    assert _unwritable(where, "nobody") is None
    assert _unwritable(Path("/etc"), "nobody") == Path("/etc")  # root's, 0755
    assert _unwritable(where, "no-such-user-here") is None  # not an installed layout
