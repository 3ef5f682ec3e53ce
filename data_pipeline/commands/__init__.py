"""Handlers of the `andes-data` commands and the options they share (the parser is in `cli.py`).

Handlers import their heavy modules (tokenizers, tiktoken) lazily so `--help` and `sample-path` start fast.
"""
