"""The QR classification policy from the configuration ([qr] and the device's store)."""

from __future__ import annotations

from agent.config import Config
from agent.keys import parse_public_key
from drivers.qr.classify import QrPolicy


def qr_policy(cfg: Config) -> QrPolicy:
    q = cfg.qr
    return QrPolicy(domains=tuple(q.domains), product_paths=tuple(q.product_paths),
                    loyalty_pattern=q.loyalty_pattern,
                    pickup_keys=tuple(parse_public_key(k) for k in q.pickup_public_keys),
                    offer_keys=tuple(parse_public_key(k) for k in q.offer_public_keys),
                    store=cfg.device.store)
