"""What the agent shares with its local clients (the kiosk, the CLI, the simulators): data
shapes and their checks, with no I/O and no configuration. The kiosk may import from here (and
the bus client); see the dependency rule in pyproject.toml ([tool.importlinter]).

- events.py: every event type as a constant, its payload type and its outbox priority
- status.py: the status document (`o2o-edge status`, the bus's status op, metrics, doctor)
- bus.py: the local bus protocol (ops, answers, refusal reasons) and its one codec; the
  client that speaks it is agent/bus/client.py
"""
