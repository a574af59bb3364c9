"""The drivers' one root exception, with a machine-readable reason."""

from __future__ import annotations

import enum


class DriverReason(enum.Enum):
    BAD_CAPTURE = "bad-capture"
    ADAPTER_MISSING = "adapter-missing"
    ADAPTER_OFF = "adapter-off"
    BACKEND = "backend"
    BAD_NDEF = "bad-ndef"
    BAD_PICKUP = "bad-pickup"  # a pickup QR code refused (drivers/qr/pickup.py)
    BAD_OFFER = "bad-offer"  # an offer code refused (drivers/qr/offer.py)
    BAD_GTIN = "bad-gtin"  # a product barcode refused (drivers/qr/gtin.py)
    NO_READER = "no-reader"
    NO_TAG = "no-tag"
    TAG_NOT_NDEF = "tag-not-ndef"
    TAG_READ_ONLY = "tag-read-only"
    TAG_TOO_SMALL = "tag-too-small"
    CANNOT_LOCK = "cannot-lock"
    WRITE_FAILED = "write-failed"


class DriverError(Exception):
    """Every error a driver raises on purpose. The message says what to do next."""

    def __init__(self, reason: DriverReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])
