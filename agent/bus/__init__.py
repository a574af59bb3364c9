"""Local bus: JSON lines over a Unix socket between the agent and its local clients."""
