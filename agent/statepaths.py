"""Where the agent keeps its state, derived in one place.

The settings name two files (`[outbox] path`, `[kiosk] store_db`); everything else is placed
beside them or in the agent's state directory, by the rules below — the same rules the agent
followed before they were written here, so existing installations keep their files:
- the store link's content bundles: a `content` folder beside store.db (the kiosk reads
  `content/current` there: the rule is agent/contracts/content_paths.py, which it may import);
- the remote configuration overlays: `remote-config.json` (applied),
  `remote-config.pending.json` (on trial) and `remote-config.pending.rolled-back` in the
  state directory ($XDG_STATE_HOME/o2o-edge, or ~/.local/state/o2o-edge: the rule is
  agent/contracts/settings_file.py state_dir, which the settings' defaults use too);
- damage met in store.db while running: `store.db.damaged` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from agent.contracts.content_paths import content_dir, current_bundle
from agent.contracts.settings_file import APP_DIR as APP_DIR
from agent.contracts.settings_file import state_dir as state_dir

if TYPE_CHECKING:  # the configuration may import this module: no import of it at run time
    from agent.config import Config

MARK_SUFFIX: Final = ".damaged"  # beside store.db: damage met while running


def damage_mark(store_db: Path) -> Path:
    """Beside store.db: damage met while running, for the next start to move the file aside."""
    return Path(str(store_db) + MARK_SUFFIX)


@dataclass(frozen=True, slots=True)
class RemoteConfigFiles:
    """The remote configuration overlays in the state directory. Apart from StatePaths
    because they are read before there is a configuration: they are part of it."""

    state_dir: Path

    @classmethod
    def here(cls, env: Mapping[str, str] | None = None) -> RemoteConfigFiles:
        return cls(state_dir(env))

    @property
    def applied(self) -> Path:
        return self.state_dir / "remote-config.json"

    @property
    def pending(self) -> Path:
        """A remote configuration on trial: kept (renamed to applied) once the uplink
        connects, else renamed to rolled_back."""
        return self.state_dir / "remote-config.pending.json"

    @property
    def rolled_back(self) -> Path:
        return self.pending.with_suffix(".rolled-back")


@dataclass(frozen=True, slots=True)
class StatePaths:
    state_dir: Path
    store_db: Path
    outbox: Path

    @classmethod
    def of(cls, cfg: Config, env: Mapping[str, str] | None = None) -> StatePaths:
        return cls(state_dir(env), cfg.kiosk.store_db, cfg.outbox.path)

    @property
    def content_dir(self) -> Path:
        """The store link's content bundles (the kiosk shows `current`)."""
        return content_dir(self.store_db)

    @property
    def content_current(self) -> Path:
        return current_bundle(self.store_db)

    @property
    def remote_config(self) -> RemoteConfigFiles:
        return RemoteConfigFiles(self.state_dir)

    @property
    def remote_config_applied(self) -> Path:
        return self.remote_config.applied

    @property
    def remote_config_pending(self) -> Path:
        return self.remote_config.pending

    @property
    def remote_config_rolled_back(self) -> Path:
        return self.remote_config.rolled_back

    @property
    def store_db_damage_mark(self) -> Path:
        return damage_mark(self.store_db)
