"""A remote configuration's life: refused when malformed, applied live when only touchpoint
sections change, staged for a restart on trial otherwise; the trial kept or rolled back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import BleConfig, Config, MqttConfig
from agent.errors import ConfigError
from agent.services.remote_config import RemoteConfig
from agent.statepaths import StatePaths
from agent.storelink.docs import Doc, DocRefused
from tests.unit.runtime.fakes import FakeRestarter, Recorder


class FakeTouchpoints:
    def __init__(self) -> None:
        self.reconfigured: list[tuple[Config, set[str]]] = []

    async def reconfigure(self, cfg: Config, changed: set[str]) -> list[str]:
        self.reconfigured.append((cfg, changed))
        return sorted(changed & {"ble"})


class FakeUplink:
    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.cfgs: list[Config] = []

    def status(self) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"state": state, "last_error": "" if state == "connected" else "refused"}

    def reconfigure(self, cfg: Config) -> None:
        self.cfgs.append(cfg)


def doc(version: int, body: Any) -> Doc:
    return Doc("config", "store-1", "all", version, 0.0, 1e12, body, "k1")


def loader(cfg: Config) -> Any:
    """load_config's stand-in: the overlay's [ble] enabled / [mqtt] url laid over cfg."""
    def load(path: str | None, overlay: tuple[int, dict[str, Any]]) -> Config:
        version, sections = overlay
        if "bad" in sections:
            raise ConfigError("[bad] is not a section")
        new = dataclasses.replace(cfg, remote_version=version, source="remote")
        if "ble" in sections:
            new = dataclasses.replace(new, ble=BleConfig(**sections["ble"]))
        if "mqtt" in sections:
            new = dataclasses.replace(new, mqtt=MqttConfig(**sections["mqtt"]))
        return new
    return load


def service(tmp_path: Path, loop: FakeRestarter, uplink: FakeUplink | None = None,
            trial: bool = False) -> tuple[RemoteConfig, Recorder, FakeTouchpoints]:
    cfg = Config(mqtt=MqttConfig(url="mqtt://broker"))
    paths = StatePaths(tmp_path / "state", tmp_path / "store.db", tmp_path / "outbox.db")
    capture, tps = Recorder(), FakeTouchpoints()
    return RemoteConfig(cfg, paths, capture, loop, tps, uplink, trial,
                        load=loader(cfg)), capture, tps


@pytest.mark.parametrize("body", [None, [], {"sections": "ble"}, {"no": "sections"}])
def test_a_malformed_document_is_refused_and_nothing_is_staged(tmp_path: Path,
                                                               body: Any) -> None:
    remote, _, _ = service(tmp_path, FakeRestarter())
    with pytest.raises(DocRefused, match="malformed"):
        remote.apply(doc(2, body))
    assert not (tmp_path / "state").exists()


def test_a_document_that_would_not_load_is_refused_with_why(tmp_path: Path) -> None:
    remote, _, _ = service(tmp_path, FakeRestarter())
    with pytest.raises(DocRefused, match=r"would not load: \[bad\] is not a section"):
        remote.apply(doc(2, {"sections": {"bad": {}}}))


def test_a_touchpoint_section_is_applied_live(tmp_path: Path) -> None:
    loop, uplink = FakeRestarter(), FakeUplink(["connected"])
    remote, capture, tps = service(tmp_path, loop, uplink)
    sections = {"ble": {"enabled": True}}
    live = remote.apply(doc(3, {"sections": sections}))
    assert live is not None
    asyncio.run(live)  # type: ignore[arg-type]
    assert json.loads(remote.paths.remote_config_applied.read_text()) == {"version": 3,
                                                            "sections": sections}
    assert not remote.paths.remote_config_pending.exists() and loop.restarts == 0
    assert remote.cfg.ble.enabled and remote.cfg.remote_version == 3
    assert remote.cfg.mqtt.url == "mqtt://broker"  # the rest as it was
    assert tps.reconfigured == [(remote.cfg, {"ble"})]
    assert uplink.cfgs == [remote.cfg]  # the birth message says which version
    assert capture.of("o2o.link.config") == [{
        "version": 3, "state": "applied", "live": True, "sections": ["ble"],
        "restarted": ["ble"]}]


def test_a_new_mqtt_section_is_staged_and_the_agent_restarts_into_it(tmp_path: Path) -> None:
    loop = FakeRestarter()
    remote, capture, tps = service(tmp_path, loop, FakeUplink(["connected"]))
    assert remote.apply(doc(4, {"sections": {"mqtt": {"url": "mqtts://new"}}})) is None
    assert json.loads(remote.paths.remote_config_pending.read_text())["version"] == 4
    assert not remote.paths.remote_config_applied.exists()
    assert loop.restarts == 1 and tps.reconfigured == []
    assert capture.of("o2o.link.config") == [{"version": 4, "state": "restarting",
                                              "sections": ["mqtt"]}]


def test_a_live_section_waits_for_a_restart_already_staged(tmp_path: Path) -> None:
    loop = FakeRestarter()
    remote, _, tps = service(tmp_path, loop)
    remote.paths.remote_config_pending.parent.mkdir(parents=True)
    remote.paths.remote_config_pending.write_text("{}")
    assert remote.apply(doc(5, {"sections": {"ble": {"enabled": True}}})) is None
    assert json.loads(remote.paths.remote_config_pending.read_text())["version"] == 5
    assert loop.restarts == 1 and tps.reconfigured == []


def test_nothing_is_applied_live_before_the_agent_runs(tmp_path: Path) -> None:
    remote, _, _ = service(tmp_path, FakeRestarter(running=False))
    assert remote.apply(doc(6, {"sections": {"ble": {"enabled": True}}})) is None
    assert remote.paths.remote_config_pending.exists()


def trial_files(remote: RemoteConfig) -> None:
    remote.paths.remote_config_pending.parent.mkdir(parents=True)
    remote.paths.remote_config_pending.write_text('{"version": 7, "sections": {}}')


def test_a_config_on_trial_is_kept_once_the_uplink_connects(tmp_path: Path) -> None:
    loop = FakeRestarter()
    remote, capture, _ = service(tmp_path, loop, FakeUplink(["connecting", "connected"]),
                                 trial=True)
    trial_files(remote)
    asyncio.run(remote.keep_or_roll_back(within_s=5))
    assert remote.paths.remote_config_applied.exists() and not remote.paths.remote_config_pending.exists()
    assert loop.restarts == 0
    assert capture.of("o2o.link.config")[0]["state"] == "applied"


def test_a_config_on_trial_is_rolled_back_when_the_uplink_does_not_connect(
        tmp_path: Path) -> None:
    loop = FakeRestarter()
    remote, capture, _ = service(tmp_path, loop, FakeUplink(["connecting"]), trial=True)
    trial_files(remote)
    asyncio.run(remote.keep_or_roll_back(within_s=0.3))
    assert remote.paths.remote_config_rolled_back.exists()
    assert not remote.paths.remote_config_pending.exists() and not remote.paths.remote_config_applied.exists()
    assert loop.restarts == 1  # into the last good configuration
    assert capture.of("o2o.link.config")[0] == {"version": None, "state": "rolled-back",
                                                "reason": "refused"}
