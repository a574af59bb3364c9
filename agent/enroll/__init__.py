"""The device's own key and certificate for mutual TLS to the broker: what `o2o-edge enroll`
and the agent's renewal share (certs.py: requests and checks; files.py: writing a pair so
that a power cut leaves one that works), and the renewal itself (renewal.py)."""
