"""NFC: pure NDEF decoding and encoding, and tag readers (nfcpy) behind a Protocol."""
