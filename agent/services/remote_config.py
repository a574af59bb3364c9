"""A configuration from upstream, through its whole life: checked like the local file,
staged, applied while running when only sections the touchpoints read change, otherwise
applied by a restart on trial — kept once the uplink connects with it, rolled back if it
does not.

The files (agent/statepaths.py): the applied overlay, read at every start; the pending one,
which a restart takes on trial; a rolled-back one, kept to be looked at."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from agent.config import Config, load_config
from agent.contracts.events import LINK_CONFIG, LinkConfig
from agent.errors import ConfigError
from agent.statepaths import StatePaths
from agent.storelink.docs import Doc, DocRefused

log = logging.getLogger(__name__)

# sections applied while running (the touchpoints that read them restart); the others
# (mqtt, kiosk, metrics...) restart the agent, a new [mqtt] on trial
LIVE_SECTIONS = frozenset({"ble", "nfc", "qr", "privacy"})
TRIAL_POLL_S = 0.2

Capture = Callable[[str, LinkConfig], object]
Loader = Callable[[str | None, tuple[int, dict[str, Any]]], Config]


def changed_sections(old: Config, new: Config) -> set[str]:
    return {f.name for f in dataclasses.fields(Config)
            if f.name not in ("source", "path", "remote_version")
            and getattr(old, f.name) != getattr(new, f.name)}


def load_overlay(path: str | None, overlay: tuple[int, dict[str, Any]]) -> Config:
    return load_config(path, overlay=overlay)


class Loop(Protocol):
    @property
    def running(self) -> bool: ...

    def restart_soon(self) -> None: ...


class Touchpoints(Protocol):
    async def reconfigure(self, cfg: Config, changed: set[str]) -> list[str]: ...


class Uplink(Protocol):
    # its part of the status document (keys of agent/contracts/status.py UplinkStatus)
    def status(self) -> Mapping[str, object]: ...

    def reconfigure(self, cfg: Config) -> None: ...


def connection_of(uplink: Uplink | None) -> tuple[str, str]:
    """(state, last error) of the uplink, as its status section says; ("disabled", ...)
    without one."""
    if uplink is None:
        return "disabled", "no uplink configured"
    st = uplink.status()
    state, error = st.get("state"), st.get("last_error")
    return (state if isinstance(state, str) else "",
            error if isinstance(error, str) else "")


class RemoteConfig:
    def __init__(self, cfg: Config, paths: StatePaths, capture: Capture, loop: Loop,
                 touchpoints: Touchpoints, uplink: Uplink | None, trial: bool = False,
                 load: Loader = load_overlay,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`cfg` the configuration the agent started with; `trial`: it carries a remote
        config not yet proven (run `keep_or_roll_back`)."""
        self._cfg = cfg
        self.paths = paths
        self.trial = trial
        self._capture = capture
        self._loop = loop
        self._touchpoints = touchpoints
        self._uplink = uplink
        self._load = load
        self._clock = clock

    @property
    def cfg(self) -> Config:
        """The configuration in force (sections applied live included)."""
        return self._cfg

    def apply(self, doc: Doc) -> Awaitable[None] | None:
        """The store link's applier for "config" documents, in a worker job: validate the
        document like the local file and stage it. A live change is returned, to be made on
        the loop (the store link awaits it there); otherwise the agent restarts into it."""
        body = doc.body
        if not isinstance(body, dict) or not isinstance(body.get("sections"), dict):
            raise DocRefused("malformed", 'a config document needs {"sections": {...}}')
        try:
            new = self._load(self._cfg.path or None, (doc.version, body["sections"]))
        except ConfigError as exc:
            raise DocRefused("malformed", f"the configuration would not load: {exc}") from None
        changed = changed_sections(self._cfg, new)
        # a restart already staged wins: this one goes with it, on trial
        live = changed <= LIVE_SECTIONS and not self.paths.remote_config_pending.exists() \
            and self._loop.running
        target = self.paths.remote_config_applied if live else self.paths.remote_config_pending
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": doc.version, "sections": body["sections"]}))
        tmp.replace(target)
        if not live:  # the uplink or the agent's own wiring changes: restart on trial
            self._capture(LINK_CONFIG, {"version": doc.version, "state": "restarting",
                                              "sections": sorted(changed)})
            self._loop.restart_soon()
            return None
        return self.apply_live(new, changed)

    async def apply_live(self, new: Config, changed: set[str]) -> None:
        """Swap sections that are safe to change while running: the touchpoints they feed
        are made again with the new settings; the uplink, the outbox and the bus go on."""
        self._cfg = dataclasses.replace(
            self._cfg, source=new.source, remote_version=new.remote_version,
            **{name: getattr(new, name) for name in changed})
        restarted = await self._touchpoints.reconfigure(self._cfg, changed)
        if self._uplink is not None:
            self._uplink.reconfigure(self._cfg)
        log.info("remote config v%s applied live: %s changed%s", new.remote_version,
                 ", ".join(sorted(changed)) or "nothing",
                 f"; restarted {', '.join(restarted)}" if restarted else "")
        self._capture(LINK_CONFIG, {"version": new.remote_version, "state": "applied",
                                          "live": True, "sections": sorted(changed),
                                          "restarted": restarted})

    async def keep_or_roll_back(self, within_s: float | None = None) -> None:
        """The trial of a remote config: kept once the uplink connects, rolled back (and the
        agent restarted into the last good one) if it does not within config_trial_s."""
        limit = self._cfg.link.config_trial_s if within_s is None else within_s
        pending, version = self.paths.remote_config_pending, self._cfg.remote_version
        deadline = self._clock() + limit
        while self._clock() < deadline:
            if connection_of(self._uplink)[0] == "connected":
                if pending.exists():
                    pending.replace(self.paths.remote_config_applied)
                self._capture(LINK_CONFIG, {"version": version, "state": "applied"})
                log.info("remote config v%s applied", version)
                return
            await asyncio.sleep(TRIAL_POLL_S)
        why = connection_of(self._uplink)[1]
        if pending.exists():
            pending.replace(self.paths.remote_config_rolled_back)
        log.warning("remote config v%s rolled back: no uplink within %.0f s (%s)",
                    version, limit, why)
        self._capture(LINK_CONFIG, {"version": version, "state": "rolled-back",
                                          "reason": why or "no connection"})
        self._loop.restart_soon()
