"""Parallelism applied from outside the model: `apply_*` functions over one named DeviceMesh."""
