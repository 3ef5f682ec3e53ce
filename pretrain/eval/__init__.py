"""Offline multiple-choice evaluation (OLMES tasks) on any training layout; see docs/evaluation.md."""
