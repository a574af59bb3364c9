"""The SQL the releases before versioned migrations ran on every open of store.db, copied
verbatim from them (agent/checkin/db.py, agent/storelink/cache.py, agent/privacy.py,
agent/kpi.py): the files in stores today were made by exactly this."""

from __future__ import annotations

# agent/checkin/db.py
CHECKIN_SQL = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,            -- the short code a shopper can type
    first_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'preparing',  -- preparing, ready, collected, cancelled
    eta_min INTEGER NOT NULL DEFAULT 3,
    store TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL,
    handed_over_at REAL
);
CREATE TABLE IF NOT EXISTS appointments (
    appt_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,            -- epoch seconds
    service TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL
);
CREATE TABLE IF NOT EXISTS loyalty (
    card TEXT PRIMARY KEY,       -- a loyalty code (QR) or a card's UID (NFC), lowercase hex
    first_name TEXT NOT NULL DEFAULT '',
    points INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
"""

# agent/storelink/cache.py
CACHE_SQL = """
CREATE TABLE IF NOT EXISTS link_docs (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,          -- "device" or "all"
    version INTEGER NOT NULL,
    raw BLOB NOT NULL,            -- the signed document as received
    applied_at REAL NOT NULL,
    PRIMARY KEY (kind, scope)
);
CREATE TABLE IF NOT EXISTS link_versions (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,     -- the highest applied; never swept (replay protection)
    PRIMARY KEY (kind, scope)
);
CREATE TABLE IF NOT EXISTS link_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,     -- hex
    trusted_since REAL NOT NULL
);
"""

# agent/privacy.py
PRIVACY_SQL = """
CREATE TABLE IF NOT EXISTS consent (
    subject TEXT PRIMARY KEY,     -- HMAC-SHA256 of the identifier under the device's key
    state TEXT NOT NULL,          -- granted, withdrawn (erased subjects stay withdrawn)
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

# agent/kpi.py
KPI_SQL = """
CREATE TABLE IF NOT EXISTS kpi_hourly (
    hour INTEGER NOT NULL,      -- epoch seconds of the hour's start (UTC)
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (hour, metric)
);
"""

OLD_SCHEMA = CHECKIN_SQL + CACHE_SQL + PRIVACY_SQL + KPI_SQL
