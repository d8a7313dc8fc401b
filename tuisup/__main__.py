"""Provides `python -m tuisup`, the same as the `tuisup` command."""

import sys

from tuisup.cli import main

sys.exit(main())
