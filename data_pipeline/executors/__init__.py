"""Executors: run a per-shard task over many shards (local processes, or Slurm job arrays: slurm.py)."""
