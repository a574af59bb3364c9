"""What every table group of the store database answers for its own rows: the retention
sweep and a data subject's erasure. The privacy controls (agent/privacy.py) ask each group;
no group touches another's tables."""

from __future__ import annotations

import unicodedata
from typing import Protocol


class TableGroup(Protocol):
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Delete this group's rows older than `cutoff` (epoch seconds) that the retention
        limit covers; how many, per table."""
        ...

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        """Remove what this group holds of a data subject; how much, per kind of row."""
        ...


def subject_forms(subject: str) -> set[str]:
    """A data subject as it may have been written: as given and in both Unicode normal forms
    ("Zoë" typed on one system is one code point, on another two). The same one string for
    an ASCII identifier."""
    return {subject, unicodedata.normalize("NFC", subject),
            unicodedata.normalize("NFD", subject)}
