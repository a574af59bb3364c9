"""What the agent shares with its local clients (the kiosk, the CLI, the simulators): data
shapes and their checks, with no I/O and no configuration. The kiosk may import from here (and
the bus client); see the dependency rule in pyproject.toml ([tool.importlinter])."""
