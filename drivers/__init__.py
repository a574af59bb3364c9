"""Hardware edges: BLE beacons, NFC, camera. Each a Protocol, backends and pure decoders."""
