"""QR codes: camera capture, decoders behind one interface, and the pure classification of
what a code says (untrusted input) into pickup, campaign, product, loyalty, text or rejected."""
