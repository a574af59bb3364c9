"""From beacon sightings to presence: RSSI smoothing, distance, zones, enter/exit/dwell,
and privacy-preserving anonymous counting."""
