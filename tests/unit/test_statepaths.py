"""The agent's state paths, derived in one place, are the files the agent has always used
(existing installations keep their remote configuration and content)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import Config, remote_config_paths
from agent.contracts import settings_file
from agent.contracts.content_paths import current_bundle
from agent.statepaths import RemoteConfigFiles, StatePaths, damage_mark, state_dir


def test_paths_beside_the_configured_files_and_in_the_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    cfg = Config()
    cfg = dataclasses.replace(cfg, kiosk=dataclasses.replace(
        cfg.kiosk, store_db=tmp_path / "var" / "store.db"))
    paths = StatePaths.of(cfg)
    assert paths.store_db == tmp_path / "var" / "store.db"
    assert paths.outbox == cfg.outbox.path
    assert paths.content_dir == tmp_path / "var" / "content"
    # the kiosk reads the same rule from the client contract
    assert paths.content_current == tmp_path / "var" / "content" / "current" == current_bundle(
        cfg.kiosk.store_db)
    assert (paths.remote_config_applied, paths.remote_config_pending) == remote_config_paths()
    assert paths.remote_config_applied == tmp_path / "xdg" / "o2o-edge" / "remote-config.json"
    assert paths.remote_config_rolled_back.name == "remote-config.pending.rolled-back"
    assert paths.remote_config == RemoteConfigFiles.here()
    assert paths.store_db_damage_mark == damage_mark(paths.store_db) == Path(
        f"{paths.store_db}.damaged")


def test_the_state_directory_without_xdg_is_under_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir({}) == tmp_path / ".local" / "state" / "o2o-edge"
    assert state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/o2o-edge")


def test_the_settings_defaults_and_the_state_paths_share_one_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default outbox and store database are made where the remote configuration is
    kept: one rule (agent/contracts/settings_file.py state_dir), not a copy per module."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    cfg = Config()
    paths = StatePaths.of(cfg)
    assert state_dir is settings_file.state_dir
    assert cfg.outbox.path.parent == cfg.kiosk.store_db.parent == paths.state_dir \
        == tmp_path / "xdg" / "o2o-edge"
