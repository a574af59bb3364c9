"""The fleet CA's side of enrolment, for the platform's tooling (`o2o-edge enroll sign` and
`enroll answer`): a device's signing request checked and its client certificate issued.

A request is signed only when it is signed by its own key, names exactly one CN of the form
"STORE/DEVICE" (the broker ACL template keys on it) and, when the caller knows who asks (the
topic a renewal request came on, which only that device's certificate may write), names that
device. The certificate is a client certificate (clientAuth) for the request's key and CN."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a [device] store or id as topics allow
MAX_DAYS: Final = 825  # what browsers and most CAs cap a leaf certificate's life at


def device_cn(cn: str) -> tuple[str, str]:
    """(store, device) of a CN "STORE/DEVICE"; ValueError otherwise."""
    store, _, device = cn.partition("/")
    if not (NAME.fullmatch(store) and NAME.fullmatch(device)) or device == "all":
        raise ValueError(f"the request names {cn!r}, not STORE/DEVICE (letters, digits, "
                         "'_', '.', '-'; 'all' is the whole store, no device)")
    return store, device


def load_ca(cert_pem: bytes, key_pem: bytes) -> tuple[Any, Any]:
    """The CA's certificate and its private key (unencrypted PEM); ValueError when they do
    not belong together or the certificate is no CA's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from agent.enroll.certs import same_key

    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not same_key(cert, key):
        raise ValueError("the CA key is not the key of the CA certificate")
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise ValueError("the CA certificate is not a CA's (no basicConstraints CA:TRUE)")
    return cert, key


def issue(csr_pem: bytes, ca_cert: Any, ca_key: Any, days: float,
          expect: str | None = None) -> bytes:
    """The client certificate (PEM) for a request, after the checks above; ValueError
    saying which failed."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not 0 < days <= MAX_DAYS:
        raise ValueError(f"a certificate lives more than 0 and at most {MAX_DAYS} days")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ValueError("not a PEM certificate signing request") from None
    try:  # a key of a kind the library cannot read is raised when it is first used
        public = csr.public_key()
        signed = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:
        raise ValueError(f"the request's key is of a kind this CA cannot read ({exc})") \
            from None
    if not signed:
        raise ValueError("the request is not signed by the key it carries")
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(names) != 1 or not isinstance(names[0], str):
        raise ValueError(f"the request names {len(names)} CNs, not one STORE/DEVICE")
    cn = names[0]
    device_cn(cn)
    if expect is not None and cn != expect:
        raise ValueError(f"the request names {cn!r} but came from {expect!r}")
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise ValueError(f"an RSA key of {public.key_size} bits: 2048 or more")
    elif not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("the request's key is neither EC nor RSA")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a device's clock a little behind
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=isinstance(public, rsa.RSAPublicKey),
            content_commitment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
