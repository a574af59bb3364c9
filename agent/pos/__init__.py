"""The store's tills: sales, refunds and offer redemptions, checked, made idempotent by
receipt, linked to the shopper's visit and recorded once (agent/contracts/pos.py has the
requests; service.py the rules; ledger.py the store.db tables; http.py the LAN endpoint)."""

from agent.pos.ledger import PosLedger
from agent.pos.service import Answer, PosService

__all__ = ["Answer", "PosLedger", "PosService"]
