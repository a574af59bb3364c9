"""Ed25519 keys as they appear in config files and on the command line: raw 32 bytes in hex
or base64 for public keys; PEM (PKCS#8) files for private keys."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)


def parse_public_key(text: str) -> Ed25519PublicKey:
    raw: bytes | None = None
    t = text.strip()
    if len(t) == 64:
        try:
            raw = bytes.fromhex(t)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(t + "=" * (-len(t) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ValueError(f"an Ed25519 public key: 32 bytes as 64 hex digits or base64 "
                         f"({t[:20]!r}... is not one)")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; give the key file that 'o2o-edge qr keygen' "
                         "wrote") from None
    except OSError as exc:  # a directory, no permission, an I/O error: say which
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and "
                         "its permissions") from None
    try:
        key = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
