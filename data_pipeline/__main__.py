"""`python -m data_pipeline` runs the `andes-data` CLI."""

import sys

from data_pipeline.cli import main

sys.exit(main())
