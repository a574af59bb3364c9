"""BLE beacons: pure frame decoders, capture format, scanner backends."""
