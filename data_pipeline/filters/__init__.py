"""Built-in pipeline steps, one family per module; importing the package registers them all."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
import data_pipeline.dedup.lines  # noqa: E402,F401  (line-level dedup runs as a filter step)
