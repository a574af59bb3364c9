"""The staff view: a small mobile-first web app on the store's LAN for staff phones and
handhelds — live alerts to acknowledge and close, the pickup queue, today's numbers and the
device's health. A separate process like the served kiosk: it reaches the agent only over the
bus (agent.bus.client's asyncio face, the contracts) and never loads the agent's
configuration; its own settings (staff PINs, device tokens, where it listens) live in a file
of its own (kiosk/staffview/settings.py)."""
