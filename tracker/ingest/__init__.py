"""Ingest: the broker client, the JT/T 808 gateway, routing and decoding, position filters, and the pipeline that joins them."""
