"""What the agent shares with its local clients (the kiosk, the CLI, the simulators): data
shapes and their checks, with no I/O and no configuration. The kiosk may import from here (and
the bus client); see the dependency rule in pyproject.toml ([tool.importlinter]).

- events.py: every event type as a constant, its payload type and its outbox priority
- status.py: the status document (`o2o-edge status`, the bus's status op, metrics, doctor)
- bus.py: the local bus protocol (ops, answers, refusal reasons) and its one codec; the
  client that speaks it is agent/bus/client.py
- alerts.py: staff alerts (kinds, states, the alert as listed) and their bus operations
- content_manifest.py: the content bundle's manifest, checked by the agent before it installs
  a bundle and read by the kiosk that shows it
- content_paths.py: where installed content bundles live (the agent writes, the kiosk reads)
- links.py: links printed into QR codes, made ASCII so every reader reads the same text
- jcs.py: the JSON Canonicalization Scheme (RFC 8785), the bytes a downstream signer signs
- settings_file.py: where the store's configuration file is and how it and the environment
  are read, the one way for the agent and the kiosk
- settings_values.py: typed settings tables (frozen dataclasses) with one-line ConfigErrors
- shared_settings.py: the configuration tables the kiosk reads as well as the agent ([device],
  [bus], [kiosk]): one schema and one set of checks for both
"""
