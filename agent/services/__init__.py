"""The agent's features as services, each with its collaborators passed in: what the
composition root (agent/runtime) builds and wires, and what unit tests drive with fakes."""
