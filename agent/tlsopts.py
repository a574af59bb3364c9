"""TLS to a broker for the tools around the agent (`collect`, `doctor`): the agent's own TLS
setup (agent.uplink.link, used as it is, so the tools trust what the agent trusts: the system
CAs or ca_file, TLS 1.2 or newer, an optional client certificate), with every file problem
turned into an AgentError that says which file and what to do, and the words for a failed
connection."""

from __future__ import annotations

import dataclasses
import socket
import ssl

from agent.config import Config, MqttConfig
from agent.errors import AgentError, Reason
from agent.uplink.link import _tls_context


def client_tls_context(ca_file: str = "", cert_file: str = "",
                       key_file: str = "") -> ssl.SSLContext:
    """A client context verifying the broker against `ca_file` (the system CAs when empty),
    with a client certificate when `cert_file` is given."""
    if bool(cert_file) != bool(key_file):
        raise AgentError(Reason.TLS, "a client certificate needs both its certificate file "
                                     "and its key file")
    cfg = dataclasses.replace(Config(), mqtt=MqttConfig(
        ca_file=ca_file, cert_file=cert_file, key_file=key_file))
    try:
        return _tls_context(cfg)
    except (OSError, ssl.SSLError, ValueError) as exc:
        # only the CA file is loaded before the client certificate (which says so itself)
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise AgentError(Reason.TLS, f"cannot load the CA file {ca_file}: {detail}; give a "
                                     "PEM file holding the CA certificate that signed the "
                                     "broker's certificate") from None


def connect_problem(exc: BaseException, tls: bool) -> str:
    """What a failed connect() means, in plain words (no class names, no tracebacks)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the broker's certificate is not trusted ({exc.verify_message}); give the CA "
                "that signed it")
    if isinstance(exc, ssl.SSLError) or (tls and isinstance(exc, ConnectionResetError)):
        detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return f"TLS handshake failed ({detail}) — is this a TLS port?"
    if isinstance(exc, socket.gaierror):
        return "host name not found; check the host in the URL"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port; check the port and the broker"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (timed out); check the address and the firewall"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
