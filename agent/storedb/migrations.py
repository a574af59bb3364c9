"""The store database's schema, as numbered steps (PRAGMA user_version says which ran).

Step 1 is the tables every release before versioning made with `CREATE TABLE IF NOT
EXISTS` — so a file of those releases (its tables there, user_version 0) is adopted as
version 1 by running step 1 on it: what it has stays, what it lacks is made. A later change
of the schema is a new step at the end, never an edit of one that shipped.

Each step runs in its own IMMEDIATE transaction together with the version it sets: a step
that fails leaves the file at the version before it, and another process (a CLI import)
that migrated while this one waited for the lock is seen, not repeated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    what: str
    statements: tuple[str, ...]  # one statement each: executescript would commit first


V1_TABLES = (
    # check-in (agent/checkin/db.py): the store's orders, appointments and loyalty cards
    """CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,            -- the short code a shopper can type
    first_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'preparing',  -- preparing, ready, collected, cancelled
    eta_min INTEGER NOT NULL DEFAULT 3,
    store TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL,
    handed_over_at REAL
)""",
    """CREATE TABLE IF NOT EXISTS appointments (
    appt_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,            -- epoch seconds
    service TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL
)""",
    """CREATE TABLE IF NOT EXISTS loyalty (
    card TEXT PRIMARY KEY,       -- a loyalty code (QR) or a card's UID (NFC), lowercase hex
    first_name TEXT NOT NULL DEFAULT '',
    points INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
)""",
    # the store link's cache (agent/storelink/cache.py)
    """CREATE TABLE IF NOT EXISTS link_docs (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,          -- "device" or "all"
    version INTEGER NOT NULL,
    raw BLOB NOT NULL,            -- the signed document as received
    applied_at REAL NOT NULL,
    PRIMARY KEY (kind, scope)
)""",
    """CREATE TABLE IF NOT EXISTS link_versions (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,     -- the highest applied; never swept (replay protection)
    PRIMARY KEY (kind, scope)
)""",
    """CREATE TABLE IF NOT EXISTS link_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,     -- hex
    trusted_since REAL NOT NULL
)""",
    # consent (agent/consent.py)
    """CREATE TABLE IF NOT EXISTS consent (
    subject TEXT PRIMARY KEY,     -- HMAC-SHA256 of the identifier under the device's key
    state TEXT NOT NULL,          -- granted, withdrawn (erased subjects stay withdrawn)
    since REAL NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS privacy_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    # KPI roll-ups (agent/kpi.py)
    """CREATE TABLE IF NOT EXISTS kpi_hourly (
    hour INTEGER NOT NULL,      -- epoch seconds of the hour's start (UTC)
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (hour, metric)
)""",
    # a file from before link_versions: its cached documents' versions are the start, or a
    # replay of an older document would be taken once the swept body is gone
    "INSERT OR IGNORE INTO link_versions SELECT kind, scope, version FROM link_docs",
)

V2_STAFF_ALERTS = (
    # staff alerts (agent/services/alerts_store.py): kept here so the store hears them with
    # the uplink down and an agent restart keeps the open ones
    """CREATE TABLE staff_alerts (
    id TEXT PRIMARY KEY,          -- a ULID: sorts by creation
    kind TEXT NOT NULL,           -- agent/contracts/alerts.py AlertKind
    subject TEXT NOT NULL,        -- staff-safe text (first name, order code at most)
    ref TEXT NOT NULL DEFAULT '{}',  -- JSON object: order, appointment, beacon, component
    dedupe TEXT,                  -- one alert at a time per key (an order, a beacon's silence)
    cause TEXT,                   -- the id of the event that raised it
    created REAL NOT NULL,
    state TEXT NOT NULL,          -- open, acknowledged, closed
    level INTEGER NOT NULL DEFAULT 0,
    escalate_at REAL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    closed_by TEXT,
    closed_at REAL
)""",
    "CREATE INDEX staff_alerts_by_state ON staff_alerts (state, created)",
    # a second alert for the same thing while the first is not closed is the same alert
    "CREATE UNIQUE INDEX staff_alerts_one_live ON staff_alerts (dedupe) "
    "WHERE state != 'closed' AND dedupe IS NOT NULL",
)

V3_POS = (
    # the tills' receipts (agent/pos/ledger.py): a till that sends a receipt again gets the
    # answer it got the first time, and nothing is counted twice
    """CREATE TABLE pos_receipts (
    pos TEXT NOT NULL,            -- the till's name ([pos] tokens)
    receipt TEXT NOT NULL,
    action TEXT NOT NULL,         -- sale, refund, offer-redeem
    body_sha256 TEXT NOT NULL,    -- of the request as checked: another body is a conflict
    answer TEXT NOT NULL,         -- JSON: what the till was told
    pending TEXT,                 -- JSON events not yet committed to the outbox (else NULL)
    at REAL NOT NULL,
    PRIMARY KEY (pos, receipt, action)
)""",
    # the one-time ledger of offer codes: a code id redeemed once, across restarts and for
    # every kiosk and till of the agent
    """CREATE TABLE offer_ledger (
    code TEXT PRIMARY KEY,        -- keyed hash of the code id (agent/consent.py's key)
    campaign TEXT NOT NULL,
    offer TEXT NOT NULL,          -- the offer text id
    expires INTEGER NOT NULL,     -- the code's own expiry: the row is kept until then
    pos TEXT NOT NULL,
    receipt TEXT NOT NULL,
    redeemed_at REAL NOT NULL
)""",
)

V4_CATALOG = (
    # the signed catalog (agent/catalog/): one row per product, its checked fields as JSON
    """CREATE TABLE catalog (
    sku TEXT PRIMARY KEY,
    gtin TEXT UNIQUE,             -- 14 digits, or NULL for a product without one
    product TEXT NOT NULL,        -- JSON: agent/contracts/catalog.py Product
    priced_at REAL NOT NULL       -- "issued" of the document that last set it
)""",
    # the parts of a snapshot still coming: applied all at once with the last
    """CREATE TABLE catalog_parts (
    snapshot TEXT NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    products TEXT NOT NULL,       -- JSON list of Product
    issued REAL NOT NULL,
    PRIMARY KEY (snapshot, part)
)""",
)

V5_CATALOG_STATE = (
    # which snapshot the catalog is (an increment names the snapshot it changes) and the
    # document that last changed it; one row, once a catalog document was applied
    """CREATE TABLE catalog_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    version INTEGER NOT NULL,     -- of the catalog document that last changed the catalog
    issued REAL NOT NULL,         -- that document's "issued"
    applied_at REAL NOT NULL
)""",
    # a snapshot's parts now come as content-addressed blobs named by one signed document
    # (parts published as documents of their own overwrote each other on the retained
    # catalog topic): nothing is kept aside in the database any more
    "DROP TABLE catalog_parts",
)

V6_VISITORS = (
    # opted-in apps seen, for repeat visits (agent/repeat_visits.py): the keyed hash of the
    # app's identifier only (agent/consent.py's key); a row older than the retention limit
    # is swept, so "seen before" means within it
    """CREATE TABLE visitors (
    subject TEXT PRIMARY KEY,     -- keyed hash of the app identifier
    first REAL NOT NULL,          -- the end of its first visit kept
    last REAL NOT NULL,           -- the end of its last visit
    visits INTEGER NOT NULL
)""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the tables of the releases before versioning (adopted as they are)",
              V1_TABLES),
    Migration(2, "staff alerts", V2_STAFF_ALERTS),
    Migration(3, "till receipts and the offer ledger", V3_POS),
    Migration(4, "the catalog", V4_CATALOG),
    Migration(5, "the catalog's snapshot; its parts as blobs", V5_CATALOG_STATE),
    Migration(6, "the opted-in apps seen, for repeat visits", V6_VISITORS),
)


class StoreDbTooNew(ConfigError):
    """The file was written by a newer o2o-edge: this one would misread it."""


def version_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path,
            migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the file to the last step's version; returns the version found. StoreDbTooNew
    (one line, exit 2) for a file of a newer schema than `migrations` knows."""
    latest = migrations[-1].version if migrations else 0
    found = version_of(conn)
    if found > latest:
        raise StoreDbTooNew(
            f"the store database {path} was written by a newer o2o-edge (schema version "
            f"{found}; this one knows up to {latest}): install that version again, or move "
            "the file aside to start a fresh one (orders imported by hand must then be "
            "imported again)")
    for step in migrations:
        if step.version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have run this step while we waited for the write lock
            if version_of(conn) < step.version:
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found
