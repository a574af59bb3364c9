"""The touch kiosk: a Textual app for shoppers and staff, a client of the agent's local bus."""
