"""A fleet of virtual stores in one asyncio process, speaking the agent's wire protocol.

Each virtual store is what an agent is on the wire: birth and will on its retained state
topic, CloudEvents batches rendered by the agent's own envelope code (bootid and a gap-free
seq), QoS 1, MQTT 5 or 3.1.1, a row let go only on its PUBACK, reconnects with full-jitter
backoff. The fleet plays K of them at store-like rates, or with a backlog each (a thundering
herd after an outage), and `check` compares what every store committed with what the
collectors wrote to PostgreSQL.
"""
