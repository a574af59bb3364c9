"""What a fleet's CA does with a device's certificate signing request, for the enrolment
tests: a client certificate for the request's key and subject."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.pki import TestCA


def sign_request(
    ca: TestCA, csr_pem: bytes, *, days: float = 90, subject: x509.Name | None = None
) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid, "the request is not signed by its own key"
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject or csr.subject)
        .issuer_name(ca.cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
