"""The store's catalog: signed catalog documents applied to store.db, looked up by GTIN or SKU."""

from agent.catalog.store import CatalogStore, catalog_applier, lookup_op

__all__ = ["CatalogStore", "catalog_applier", "lookup_op"]
