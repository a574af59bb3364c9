"""A plain-words notice, shown only while the agent cannot be reached."""

from __future__ import annotations

from textual.widgets import Static


class AgentBanner(Static):
    def __init__(self, text: str, visible: bool) -> None:
        super().__init__(text, id="agent-banner", markup=False)
        self.display = visible
