"""`o2o-edge enroll`: the device's own key and certificate for mutual TLS to the broker.

    o2o-edge enroll request   a new key (kept on the device) and a certificate signing request
                              whose CN is "STORE/DEVICE", what the broker ACL template keys on
    o2o-edge enroll install   the certificate the fleet's CA signed, checked against the key,
                              the name and the CA before it replaces the one in use

Both write next to the configuration file (or --dir). A renewal is the same two steps: a new
key each time, the old key and certificate in use until the new certificate is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

KEY_FILE = "device.key"
CSR_FILE = "device.csr"
NEW_KEY_FILE = "device.key.new"  # the key of a request whose certificate is not installed yet
CERT_FILE = "device.pem"


def _config(args: argparse.Namespace) -> Any:
    from agent.config import load_config
    from agent.config_checks import identity_problems

    cfg = load_config(args.config)
    problems = identity_problems(cfg)
    if problems:  # the certificate would carry the placeholder for good
        raise ValueError(problems[0])
    return cfg


def _directory(args: argparse.Namespace, cfg: Any) -> Path:
    if args.dir:
        return Path(args.dir)
    if cfg.path:
        return Path(cfg.path).resolve().parent
    raise ValueError("no configuration file to keep the key beside: give --dir DIR")


def _write(path: Path, data: bytes, mode: int, like: Path | None) -> None:
    """Written whole or not at all (a temporary file renamed), with `mode`, and the group of
    `like` (the configuration file: the agent's group reads it) when this user may set it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if like is not None:
            # not root and not in that group: the file stays this user's
            with contextlib.suppress(OSError):
                os.fchown(fd, -1, like.stat().st_gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_enroll_request(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    try:
        cfg = _config(args)
        where = _directory(args, cfg)
        if not where.is_dir():
            raise ValueError(f"{where}: no such directory; give --dir DIR")
        cn = f"{cfg.device.store}/{cfg.device.id}"
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256())
        )
        pem = csr.public_bytes(serialization.Encoding.PEM)
        like = Path(cfg.path) if cfg.path else None
        _write(
            where / NEW_KEY_FILE,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o640,
            like,
        )
        _write(where / CSR_FILE, pem, 0o644, like)
    except OSError as exc:
        print(
            f"o2o-edge enroll: {exc.filename or ''}: {exc.strerror or exc}; run it as a "
            "user who may write there (sudo), or give --dir DIR",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"o2o-edge enroll: {exc}", file=sys.stderr)
        return 2
    print(
        f"key {where / NEW_KEY_FILE} (stays on this device), request {where / CSR_FILE} for "
        f"CN {cn}: have the fleet's CA sign it, then 'o2o-edge enroll install CERT.pem'",
        file=sys.stderr,
    )
    sys.stdout.write(pem.decode("ascii"))
    return 0


def _check_certificate(cert: Any, key: Any, cn: str, ca_file: str, now: dt.datetime) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, raw
    ) != key.public_key().public_bytes(serialization.Encoding.DER, raw):
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


def cmd_enroll_install(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cfg = _config(args)
        where = _directory(args, cfg)
        pending = where / NEW_KEY_FILE
        try:
            key = serialization.load_pem_private_key(pending.read_bytes(), password=None)
        except FileNotFoundError:
            raise ValueError(
                f"{pending}: no pending key; run 'o2o-edge enroll request' first"
            ) from None
        try:
            data = Path(args.certificate).read_bytes()
            cert = x509.load_pem_x509_certificate(data)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.certificate}: not a PEM certificate ({exc})") from None
        _check_certificate(
            cert,
            key,
            f"{cfg.device.store}/{cfg.device.id}",
            cfg.mqtt.ca_file,
            dt.datetime.now(dt.UTC),
        )
        like = Path(cfg.path) if cfg.path else None
        _write(where / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644, like)
        os.replace(pending, where / KEY_FILE)  # the key and its certificate, together now
    except OSError as exc:
        print(
            f"o2o-edge enroll: {exc.filename or ''}: {exc.strerror or exc}; run it as a "
            "user who may write there (sudo), or give --dir DIR",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"o2o-edge enroll: {exc}", file=sys.stderr)
        return 2
    cert_path, key_path = where / CERT_FILE, where / KEY_FILE
    print(
        f"installed {cert_path} (expires {cert.not_valid_after_utc:%Y-%m-%d}) and "
        f"{key_path}; restart the agent to use them",
        file=sys.stderr,
    )
    if (cfg.mqtt.cert_file, cfg.mqtt.key_file) != (str(cert_path), str(key_path)):
        print(f'set in [mqtt]: cert_file = "{cert_path}" and key_file = "{key_path}"')
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "enroll",
        help="this device's key and certificate for the broker: a "
        "signing request, then the signed certificate",
    )
    esub = p.add_subparsers(dest="enroll_command", metavar="ACTION", required=True)
    q = esub.add_parser(
        "request",
        help="a new key and a certificate signing request (CN "
        "STORE/DEVICE) on stdout and in device.csr",
    )
    q.add_argument("--config", help="configuration file (default: the usual search)")
    q.add_argument(
        "--dir", help="where the key and request go (default: beside the configuration file)"
    )
    q.set_defaults(handler=cmd_enroll_request)
    q = esub.add_parser(
        "install",
        help="install the certificate the CA signed for the last request, after checking it",
    )
    q.add_argument("certificate", help="the signed certificate (PEM)")
    q.add_argument("--config", help="configuration file (default: the usual search)")
    q.add_argument(
        "--dir",
        help="where the key is and the certificate goes (default: beside the configuration file)",
    )
    q.set_defaults(handler=cmd_enroll_install)
