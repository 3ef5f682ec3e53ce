"""Executors: run a per-shard task over many shards (local processes now, Slurm job arrays later)."""
