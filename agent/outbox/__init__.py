"""Durable SQLite outbox: every captured event is committed here before anything else."""

from agent.outbox.reader import OutboxReader, open_reader
from agent.outbox.schema import KEY_SHIFT
from agent.outbox.writer import Committed, OutboxWriter


def row_range(n: int) -> int:
    """Which range of row numbers `n` is in: its priority's (agent/outbox/schema.py). Within
    one, rows are numbered in commit order."""
    return n >> KEY_SHIFT


__all__ = ["Committed", "OutboxReader", "OutboxWriter", "open_reader", "row_range"]
