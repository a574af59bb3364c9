"""Checks of the agent against clients and specifications it did not write: the official
CloudEvents SDK reading what it publishes, a signer in another language (Node) making the
documents it trusts, and zbar reading the QR codes it draws."""

from __future__ import annotations

# the private broker of the integration tests
from tests.integration.conftest import mosquitto  # noqa: F401
