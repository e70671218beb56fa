"""`python -m pitcrew.cli`: the `pitcrew` command."""

import os

from pitcrew.cli.main import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
