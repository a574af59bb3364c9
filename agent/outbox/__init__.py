"""Durable SQLite outbox: every captured event is committed here before anything else."""

from agent.outbox.reader import OutboxReader, open_reader
from agent.outbox.writer import Committed, OutboxWriter

__all__ = ["Committed", "OutboxReader", "OutboxWriter", "open_reader"]
