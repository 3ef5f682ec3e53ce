"""Data pipeline: filtering, deduplication, classification and packing of document shards."""
