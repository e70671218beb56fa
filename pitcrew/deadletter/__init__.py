"""Dead letters: ingest, the failed-message store, grouping and replay."""
