"""`o2o-edge enroll`: the device's own key and certificate for mutual TLS to the broker.

    o2o-edge enroll request   a new key (kept on the device) and a certificate signing request
                              whose CN is "STORE/DEVICE", what the broker ACL template keys on
    o2o-edge enroll install   the certificate the fleet's CA signed, checked against the key,
                              the name and the CA before it replaces the one in use

Both write next to the configuration file (or --dir). A renewal by hand is the same two steps:
a new key each time, the old key and certificate in use until the new certificate is installed.
The agent renews by itself before the expiry, over its broker connection (agent/enroll/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from agent.cli import enroll_ca
from agent.enroll.certs import check_certificate, new_request
from agent.enroll.files import write_atomic

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


def cmd_enroll_request(args: argparse.Namespace) -> int:
    try:
        cfg = _config(args)
        where = _directory(args, cfg)
        if not where.is_dir():
            raise ValueError(f"{where}: no such directory; give --dir DIR")
        cn = f"{cfg.device.store}/{cfg.device.id}"
        key_pem, pem = new_request(cn)
        like = Path(cfg.path) if cfg.path else None
        write_atomic(where / NEW_KEY_FILE, key_pem, 0o640, like)
        write_atomic(where / CSR_FILE, pem, 0o644, like)
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
        check_certificate(
            cert,
            key,
            f"{cfg.device.store}/{cfg.device.id}",
            cfg.mqtt.ca_file,
            dt.datetime.now(dt.UTC),
        )
        like = Path(cfg.path) if cfg.path else None
        write_atomic(where / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644, like)
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
    enroll_ca.add_parsers(esub)
