"""Check-in for the kiosk: the store's orders, appointments and loyalty cards in SQLite, and
the answers to check-in requests against them."""

from agent.checkin.db import StoreDb
from agent.checkin.service import CheckinService

__all__ = ["CheckinService", "StoreDb"]
