"""MQTT uplink: drains the outbox in CloudEvents batches, deleting rows only on PUBACK."""
