"""Executors: run a per-shard task over many shards (local processes, Ray tasks: ray.py, Slurm: slurm.py)."""
