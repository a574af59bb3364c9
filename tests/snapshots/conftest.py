"""A fixed hand-off token: the link in a shown QR code carries one (o2o_h), random in use,
and a snapshot must draw the same code every run."""

from __future__ import annotations

import pytest

TOKEN = "01KBG7Z2RQ5T8W3N6Y9C4D1F0H"  # a ULID, as kiosk/handoff.py new_token makes


@pytest.fixture(autouse=True)
def fixed_handoff_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.screens.content.new_token", lambda: TOKEN)
