"""The `andes-data` commands: each module declares its commands' options (`add_<command>_parser`) next
to their handlers (`cmd_<command>`); `options.py` holds the options several share. `cli.py` registers them.

Handlers import their heavy modules (tokenizers, tiktoken) lazily so `--help` and `sample-path` start fast.
"""
