"""JSON Web Signature (RFC 7515) with Ed25519 (RFC 8037): the envelope any upstream can sign
documents in, with the JOSE library of its language or a few lines over its crypto library.

The signature covers the exact bytes sent — BASE64URL(protected header) "." BASE64URL(payload)
— so no canonical JSON has to be reproduced: the signer writes its JSON its own way (key order,
number style, escapes) and the agent reads what was signed. Accepted: the compact serialization
(three base64url parts joined by ".") and the flattened JSON one ({"protected", "payload",
"signature"}); one signature, every header member protected.

The protected header needs "alg": "EdDSA" (RFC 8037) or "Ed25519" (its fully specified name,
RFC 9864); "kid", if there, names the key (the agent's key id: the first 8 hex digits of the
SHA-256 of the raw public key), else each trusted key is tried. "crit" and "b64" (RFC 7797's
unencoded payload) are refused: they change what the signature means and nothing here needs
them. Both JSON parts are refused with a member twice: two parsers could read different values
from one signed text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHMS: Final = ("EdDSA", "Ed25519")
MAX_HEADER: Final = 4096  # bytes of the encoded protected header: ours is under 100
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


class JwsError(ValueError):
    """Not a JWS this agent takes; `code` is the store link's refusal code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    payload: bytes
    signing_input: bytes  # what the signature covers, as RFC 7515 section 5.2 says
    signature: bytes

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    def verifies(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(self.signature, self.signing_input)
        except InvalidSignature:
            return False
        return True


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Strict base64url (RFC 7515 section 2): no padding, no other characters, and the one
    encoding of its bytes (no stray bits in the last character: a second spelling of one
    signature would be a second message)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise JwsError("malformed", f"the {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("malformed", f"the {what} is not base64url") from None
    if b64url(data) != text:
        raise JwsError("malformed", f"the {what} is not base64url in its one spelling")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # built in C: a member given twice shows as a shorter dict
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JwsError("malformed", f"member {twice[:40]!r} given twice")
    return out


def loads(data: bytes | str, what: str) -> Any:
    """JSON without duplicate members, no NaN or infinities: the one reading of the text."""

    def constant(name: str) -> Any:
        raise JwsError("malformed", f"the {what} has {name}, which is not JSON")

    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=constant)
    except JwsError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwsError("malformed", f"the {what} is not JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise JwsError("malformed", f"the {what} is not JSON (nested too deeply)") from None


def parse(raw: bytes) -> Jws:
    """The JWS in `raw` (compact or flattened JSON), its header checked; JwsError if it is not
    one this agent takes. The signature is not checked here (`Jws.verifies`)."""
    text = raw.strip()
    if text.startswith(b"{"):
        outer = loads(text, "JWS")
        if not isinstance(outer, dict):
            raise JwsError("malformed", "not a JWS")
        if "signatures" in outer:
            raise JwsError(
                "malformed",
                "a JWS with one signature is taken (compact or "
                "flattened), not the general serialization",
            )
        if "header" in outer:
            raise JwsError(
                "malformed",
                "an unprotected JWS header is not taken: put every member in the protected header",
            )
        parts = [outer.get(k) for k in ("protected", "payload", "signature")]
        extra = set(outer) - {"protected", "payload", "signature"}
        if not all(isinstance(p, str) for p in parts) or extra:
            raise JwsError(
                "malformed",
                'a flattened JWS has the members "protected", '
                '"payload" and "signature", strings, and no others',
            )
        protected, payload, signature = (str(p) for p in parts)
    else:
        try:
            protected, payload, signature = text.decode("ascii").split(".")
        except (UnicodeDecodeError, ValueError):
            raise JwsError(
                "malformed", "not a JWS (three base64url parts joined by '.') nor a JSON document"
            ) from None
    if len(protected) > MAX_HEADER:
        raise JwsError("malformed", f"the JWS header is over {MAX_HEADER} bytes")
    header = loads(b64url_decode(protected, "JWS header"), "JWS header")
    if not isinstance(header, dict):
        raise JwsError("malformed", "the JWS header is not a JSON object")
    alg = header.get("alg")
    if alg == "none":
        raise JwsError("unsigned", 'the JWS says "alg": "none"')
    if alg not in ALGORITHMS:
        raise JwsError(
            "malformed",
            f'the JWS algorithm {str(alg)[:20]!r} is not taken: sign with Ed25519 ("alg": "EdDSA")',
        )
    for name in ("crit", "b64"):
        if name in header:
            raise JwsError("malformed", f'the JWS header member "{name}" is not supported')
    if "kid" in header and (not isinstance(header["kid"], str) or not header["kid"]):
        raise JwsError("malformed", 'the JWS header\'s "kid" is not a key id')
    return Jws(
        header,
        b64url_decode(payload, "JWS payload"),
        f"{protected}.{payload}".encode("ascii"),
        b64url_decode(signature, "JWS signature"),
    )


def sign(private: Ed25519PrivateKey, payload: bytes, header: dict[str, Any]) -> str:
    """The compact JWS of `payload` (RFC 7515 section 7.1) under the protected `header`
    (written without spaces), signed with Ed25519."""
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{protected}.{b64url(payload)}"
    return f"{signing_input}.{b64url(private.sign(signing_input.encode('ascii')))}"
