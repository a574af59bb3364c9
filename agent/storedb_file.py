"""Where the start-time check of the store database lived: now agent/storedb/filecheck.py
(the store database's owner). Kept for the imports that still name this module."""

from agent.storedb.filecheck import (
    KEY,
    MARK_SUFFIX,
    QUARANTINED_EVENT,
    MovedAside,
    check_at_start,
    is_damage,
    mark_damaged,
    problem_of,
)

__all__ = ["KEY", "MARK_SUFFIX", "QUARANTINED_EVENT", "MovedAside", "check_at_start",
           "is_damage", "mark_damaged", "problem_of"]
