"""Which bus clients may use which operations: the staff operations (listing, acknowledging
and closing alerts) need the staff bus token, the rest are open to every client of the
socket. The rule and why it is a token: agent/contracts/alerts.py."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from agent.bus.edge import Refused
from agent.contracts.alerts import (
    STAFF_OPS,
    TOKEN_FIELD,
    TOKEN_MAX,
    TOKEN_MIN,
    token_digest,
)
from agent.errors import Reason


class StaffGate:
    def __init__(self, digests: Iterable[str]) -> None:
        """`digests`: [staff] bus_tokens, each "sha256$" + hex (checked by the config)."""
        self._digests = tuple(digests)

    def check(self, op: str, msg: Mapping[str, Any]) -> None:
        """Nothing for an op open to all or a request with a staff token; Refused (reason
        forbidden, counted under "<op>:staff-only" or "<op>:wrong-token") otherwise."""
        if op not in STAFF_OPS:
            return
        token = msg.get(TOKEN_FIELD)
        if not self._digests:
            raise Refused(
                f"{op}:staff-only",
                Reason.FORBIDDEN,
                f"{op} is for staff tools and this agent trusts none yet: make a "
                "token with 'o2o-edge staff-view bus-token' and put its digest in "
                "[staff] bus_tokens",
            )
        if token is None:
            raise Refused(
                f"{op}:staff-only",
                Reason.FORBIDDEN,
                f"{op} is for staff tools: send the staff bus token in "
                f'"{TOKEN_FIELD}" (the staff view\'s bus_token setting)',
            )
        if not isinstance(token, str) or not TOKEN_MIN <= len(token) <= TOKEN_MAX:
            raise Refused(
                f"{op}:wrong-token",
                Reason.FORBIDDEN,
                f'"{TOKEN_FIELD}" must be the staff bus token: text of {TOKEN_MIN} '
                f"to {TOKEN_MAX} characters",
            )
        offered = token_digest(token)
        # every digest compared, in constant time each: no early exit tells which came close
        if not sum(hmac.compare_digest(offered, d) for d in self._digests):
            raise Refused(
                f"{op}:wrong-token",
                Reason.FORBIDDEN,
                "this staff bus token is not one of [staff] bus_tokens (revoked, or "
                "of another device): use the one made for this agent",
            )
