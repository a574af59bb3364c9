"""Where the content bundles from upstream live, a rule the agent (which installs them,
agent/storelink/content.py) and the kiosk (which shows them) must read the same way: a
`content` folder beside the store database, with `current` pointing at the bundle in force.

Here, not in agent/statepaths.py, because the kiosk may import only the client contract."""

from __future__ import annotations

from pathlib import Path
from typing import Final

CONTENT_FOLDER: Final = "content"
CURRENT: Final = "current"  # a symbolic link to the bundle in force, switched atomically


def content_dir(store_db: Path) -> Path:
    """The store link's content bundles: v<version> folders and `current`."""
    return store_db.parent / CONTENT_FOLDER


def current_bundle(store_db: Path) -> Path:
    """The bundle the kiosk shows (it may not exist yet: nothing delivered)."""
    return content_dir(store_db) / CURRENT
