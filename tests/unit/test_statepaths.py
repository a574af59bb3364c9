"""The agent's state paths, derived in one place, are the files the agent has always used
(existing installations keep their remote configuration and content)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import Config, remote_config_paths
from agent.statepaths import StatePaths, damage_mark, state_dir
from agent.storelink.content import content_root


def test_paths_beside_the_configured_files_and_in_the_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    cfg = Config()
    cfg = dataclasses.replace(cfg, kiosk=dataclasses.replace(
        cfg.kiosk, store_db=tmp_path / "var" / "store.db"))
    paths = StatePaths.of(cfg)
    assert paths.store_db == tmp_path / "var" / "store.db"
    assert paths.outbox == cfg.outbox.path
    assert paths.content_dir == tmp_path / "var" / "content" == content_root(
        cfg.kiosk.store_db.parent)
    assert paths.content_current == tmp_path / "var" / "content" / "current"
    assert (paths.remote_config_applied, paths.remote_config_pending) == remote_config_paths()
    assert paths.remote_config_applied == tmp_path / "xdg" / "o2o-edge" / "remote-config.json"
    assert paths.remote_config_rolled_back.name == "remote-config.pending.rolled-back"
    assert paths.store_db_damage_mark == damage_mark(paths.store_db) == Path(
        f"{paths.store_db}.damaged")


def test_the_state_directory_without_xdg_is_under_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_dir({}) == tmp_path / ".local" / "state" / "o2o-edge"
    assert state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/o2o-edge")
