"""The `o2o-edge` command line (main.py); the kiosk and the simulators add their own commands
through the "o2o_edge.commands" entry points."""
