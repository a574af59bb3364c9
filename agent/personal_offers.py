"""Personal offers for opted-in app users (agent/contracts/offers.py): the signed `offers`
documents applied, and the bus's `personal-offer` op the kiosk asks when one app is at it.

Offers are kept in memory under the keyed hash of the app's identifier (the consent scheme's
key, agent/consent.py), never the identifier: the store's and this device's documents, this
device's offer first. An app whose consent is withdrawn gets none, whatever a document says,
and neither does any app once its document has expired. At start the last applied documents
are read back from the link cache (agent/storelink/cache.py), which holds only documents the
store link verified and applied; the retention sweep and an erasure reach both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.contracts.offers import (
    OffersError,
    PersonalOffer,
    PersonalOfferReply,
    is_unicode,
    parse_offers,
)
from agent.errors import AgentError, Reason
from agent.storedb import subject_forms
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc, DocRefused, unverified_fields

KIND = "offers"
SCOPES = ("device", "all")  # this device's document first: its offer wins


class PersonalOffers:
    def __init__(self, key_of: Callable[[str], str], withdrawn: Callable[[], set[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.key_of = key_of
        self.withdrawn = withdrawn
        self.clock = clock
        self._lock = threading.Lock()  # applied in a worker thread, asked from the bus's
        # scope -> (applied at, expires, {keyed hash: offer})
        self._docs: dict[str, tuple[float, float, dict[str, PersonalOffer]]] = {}

    def apply(self, doc: Doc) -> None:
        """The store link's applier of an offers document: the whole set for its scope."""
        try:
            rows = parse_offers(doc.body)
        except OffersError as exc:
            raise DocRefused("malformed", str(exc)) from None
        offers = {self.key_of(subject): offer for subject, offer in rows}
        with self._lock:
            self._docs[doc.scope] = (self.clock(), doc.expires, offers)

    def restore(self, cache: LinkCache) -> int:
        """The last applied documents, as the link cache kept them; how many offers."""
        for scope in SCOPES:
            raw = cache.document(KIND, scope)
            fields = unverified_fields(raw) if raw else None
            if not isinstance(fields, dict):
                continue  # none, or blanked by an erasure
            try:
                rows = parse_offers(fields.get("body"))
            except OffersError:
                continue
            expires = fields.get("expires")
            with self._lock:
                self._docs[scope] = (self.clock(), float(expires) if isinstance(
                    expires, int | float) else 0.0, {self.key_of(s): o for s, o in rows})
        return sum(len(d[2]) for d in self._docs.values())

    def offer_for(self, app_id: str) -> PersonalOffer | None:
        key = self.key_of(app_id)
        if key in self.withdrawn():
            return None
        now = self.clock()
        with self._lock:
            for scope in SCOPES:
                doc = self._docs.get(scope)
                if doc is not None and (not doc[1] or now < doc[1]) and key in doc[2]:
                    return doc[2][key]
        return None

    def op(self, msg: dict[str, Any]) -> PersonalOfferReply:
        """The bus's personal-offer op: {"id": the app's identifier}."""
        app_id = msg.get("id")
        if not isinstance(app_id, str) or not 0 < len(app_id) <= 128 or not is_unicode(app_id):
            raise AgentError(Reason.BUS_PROTOCOL,
                             'personal-offer takes {"id": "<the app\'s identifier>"}')
        return PersonalOfferReply(ok=True, offer=self.offer_for(app_id))

    # --- a table group as the privacy controls ask it (agent/storedb/groups.py) ------------

    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Documents applied before `cutoff` (the link cache drops their bodies too)."""
        with self._lock:
            old = [s for s, d in self._docs.items() if d[0] < cutoff]
            for scope in old:
                del self._docs[scope]
        return {"personal_offer_docs": len(old)}

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        keys = {self.key_of(f) for f in subject_forms(subject)}
        n = 0
        with self._lock:
            for _, _, offers in self._docs.values():
                for key in keys & offers.keys():
                    del offers[key]
                    n += 1
        return {"personal_offers": n}
