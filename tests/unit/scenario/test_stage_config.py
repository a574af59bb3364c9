"""The scenario stage's configuration for the agent: written by a TOML writer and placed by
the agent's own path rules, so a work folder with a quote or a backslash in its name still
gives the agent the files the stage looks at."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config
from agent.statepaths import StatePaths
from simulators.scenario.model import load
from simulators.scenario.stage import Stage

SCENARIO = Path(__file__).resolve().parents[3] / "simulators" / "scenarios" / "short_visit.toml"


def test_a_work_folder_with_quotes_and_backslashes_loads_as_written(tmp_path: Path) -> None:
    workdir = tmp_path / 'the "store" \\ day'
    workdir.mkdir()
    stage = Stage(load(SCENARIO), workdir, broker="none")
    try:
        stage.write_config()
        cfg = load_config(str(stage.cfg_path), env={})
    finally:
        stage.stop()
    assert cfg.outbox.path == workdir / "state" / "outbox.db" == stage.paths.outbox
    assert cfg.kiosk.store_db == stage.paths.store_db
    # the agent it starts keeps its remote configuration in the stage's state, not the user's
    agent_paths = StatePaths.of(cfg, env=stage.agent_env())
    assert agent_paths == stage.paths
    assert agent_paths.remote_config_applied.is_relative_to(workdir / "state")
