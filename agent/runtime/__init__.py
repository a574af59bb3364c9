"""The composition root: builds the agent from its configuration and wires its services."""
