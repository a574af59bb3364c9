"""The store database (store.db: orders, appointments, loyalty cards, the store link's cached
documents, consent, KPI roll-ups) and its one owner per process: the file checked at start,
opened once, its schema versioned; the repositories of each table group use the owner."""

from agent.storedb.database import Repository, StoreDatabase, attach
from agent.storedb.filecheck import MovedAside, check_at_start, read_only_check
from agent.storedb.groups import TableGroup, subject_forms
from agent.storedb.migrations import MIGRATIONS, Migration, StoreDbTooNew

__all__ = ["MIGRATIONS", "Migration", "MovedAside", "Repository", "StoreDatabase", "StoreDbTooNew",
           "TableGroup", "attach", "check_at_start", "read_only_check", "subject_forms"]
