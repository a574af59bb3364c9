"""Requests and checks: a new key and its certificate signing request (CN "STORE/DEVICE",
what the broker ACL template keys on), and the checks a signed certificate must pass before
it replaces the one in use. No I/O but reading the CA file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


def new_request(cn: str) -> tuple[bytes, bytes]:
    """A new EC P-256 key (PKCS#8 PEM, unencrypted: the agent starts unattended) and a
    request for it naming `cn`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ), request_for(key, cn)


def request_for(key: Any, cn: str) -> bytes:
    """A signing request (PEM) for an existing key: the same key asked for again."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def same_key(cert: Any, key: Any) -> bool:
    from cryptography.hazmat.primitives import serialization

    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(der, spki) ==
                key.public_key().public_bytes(der, spki))


def check_certificate(cert: Any, key: Any, cn: str, ca_file: str, now: dt.datetime) -> None:
    """ValueError saying why `cert` would not work for this device: another key, another
    name, out of its validity, or not from the CA in `ca_file` (when given)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    if not same_key(cert, key):
        raise ValueError(
            "the certificate is not for this device's pending key (from the last "
            "'o2o-edge enroll request'); sign that request"
        )
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [cn]:
        raise ValueError(
            f"the certificate names {names!r}, this device is {cn!r} ([device] "
            "store/id): the broker ACL would keep it from its topics"
        )
    if cert.not_valid_after_utc <= now:
        raise ValueError(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now + dt.timedelta(minutes=5):
        start = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}"
        raise ValueError(
            f"the certificate is valid only from {start} UTC; check this device's clock"
        )
    if ca_file:
        try:
            roots = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"[mqtt] ca_file {ca_file}: cannot be read as PEM ({exc})") from None
        if not any(_signed_by(cert, root) for root in roots):
            raise ValueError(
                f"the certificate is not signed by the CA in [mqtt] ca_file "
                f"({ca_file}): the broker would refuse it"
            )


def _signed_by(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, TypeError for another key type, ValueError
        return False
    return True


def renews_on(expires: dt.datetime, before_days: float) -> dt.datetime | None:
    """When the agent starts asking for a new certificate; None: renewal is off."""
    if before_days <= 0:
        return None
    return expires - dt.timedelta(days=before_days)
