"""The abuse suite: every input surface driven with hostile and careless input.

Each test checks what a user relies on, not how the code is built: capture goes on, nothing
acknowledged is lost, memory and threads stay bounded, every refusal is answered and counted,
no traceback reaches a user. Property-based cases run a bounded number of examples here; the
long variants are marked slow (python3 dev.py test -m slow).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# the broker, bus and D-Bus fixtures of the integration tests, for the surfaces that need them
from tests.integration.conftest import (  # noqa: F401
    bus,
    mosquitto,
    nats,
    subscribers,
)

# Property tests here decorate with @ABUSE: a bounded number of examples in the default suite
# (CI time); O2O_EDGE_ABUSE_EXAMPLES raises it for a long run. Not a global profile: the fuzz
# tests elsewhere keep their own settings.
ABUSE = settings(
    max_examples=int(os.environ.get("O2O_EDGE_ABUSE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
