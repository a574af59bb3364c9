"""The staff view with a configured local certificate: it answers over TLS only, its session
cookie is Secure, and a certificate it cannot load is one line at start."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk.pin import hash_pin
from kiosk.staffview import run
from kiosk.staffview.settings import StaffViewSettings
from tests.unit.staffview.fakebus import FakeAgent


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "staff.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("staff.local")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "staff.crt", folder / "staff.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_over_tls_the_cookie_is_secure_and_plain_http_gets_nothing(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    port = _port()
    view = StaffViewSettings(enabled=True, listen=(f"127.0.0.1:{port}",), tls_cert=str(cert),
                             tls_key=str(key), staff={"Anna": hash_pin("4821")})

    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        ready = asyncio.Event()
        serving = asyncio.create_task(run.serve(view, agent.path, ready))
        await asyncio.wait({serving, asyncio.ensure_future(ready.wait())}, timeout=10,
                           return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # its error, if it failed to start
        assert ready.is_set()
        trust = ssl.create_default_context(cafile=str(cert))
        trust.check_hostname = False  # the certificate names staff.local; we dial 127.0.0.1
        try:
            async with aiohttp.ClientSession() as http:
                r = await http.post(f"https://127.0.0.1:{port}/api/login", ssl=trust,
                                    json={"name": "Anna", "pin": "4821"})
                assert r.status == 200
                cookie = r.headers["Set-Cookie"]
                assert "Secure" in cookie and "HttpOnly" in cookie
                with pytest.raises(aiohttp.ClientError):
                    await http.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            await agent.stop()

    asyncio.run(main())


def test_an_unloadable_certificate_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate")
    view = StaffViewSettings(enabled=True, listen=(f"127.0.0.1:{_port()}",),
                             tls_cert=str(tmp_path / "bad.crt"), tls_key=str(tmp_path / "k"))
    with pytest.raises(run.ServeError) as info:
        asyncio.run(run.serve(view, tmp_path / "agent.sock"))
    assert "tls_cert" in str(info.value) and "\n" not in str(info.value)
