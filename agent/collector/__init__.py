"""The reference collector: the upstream end of the uplink for tests and demos."""
