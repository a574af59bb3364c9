"""The store link: signed documents and commands from upstream (config, content, orders,
appointments, key rotation), verified, cached and applied."""
