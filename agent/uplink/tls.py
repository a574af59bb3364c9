"""TLS for the MQTT connection: the client's context (never below TLS 1.2, the configured CA and
client certificate) and what a failed connect says — a TLS URL to a plaintext port, a
certificate that does not verify, or a broker out of reach."""

from __future__ import annotations

import ssl
from typing import Final

from agent.config import Config
from agent.errors import AgentError, Reason

# what a TLS client meets when the port speaks plain MQTT: the broker reads the ClientHello
# as a malformed packet and closes, or answers bytes that are no TLS record
_NOT_TLS_ERRORS: Final = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                          ssl.SSLEOFError, ssl.SSLZeroReturnError)
_NOT_TLS_REASONS: Final = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                     "UNEXPECTED_EOF_WHILE_READING", "HTTP_REQUEST",
                                     "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"})


def _not_a_tls_port(exc: OSError) -> bool:
    if isinstance(exc, _NOT_TLS_ERRORS):
        return True
    return isinstance(exc, ssl.SSLError) and str(exc.reason or "") in _NOT_TLS_REASONS


def tls_context(cfg: Config) -> ssl.SSLContext:
    m = cfg.mqtt
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=m.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if m.cert_file:
        try:
            ctx.load_cert_chain(m.cert_file, m.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise AgentError(
                Reason.TLS, f"cannot load client certificate {m.cert_file} / {m.key_file}: {exc}"
            ) from exc
    return ctx


def connect_error(exc: OSError, host: str, port: int, *, tls: bool) -> str:
    """What a failed connect() says to whoever reads status or the log: what to check."""
    where = f"{host}:{port}"
    if tls and _not_a_tls_port(exc):
        return (f"TLS handshake with {where} failed — is this a TLS port? (the server "
                f"does not speak TLS there: {exc}; mqtts:// needs the broker's TLS "
                "listener)")
    if isinstance(exc, ssl.SSLError):
        detail = exc.reason or str(exc)
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = f"certificate verify failed: {exc.verify_message}"
        return (f"TLS handshake with {where} failed: {detail}"
                " (check [mqtt] ca_file, cert_file, key_file and the broker's certificate)")
    return f"cannot reach broker {where}: {exc}"
