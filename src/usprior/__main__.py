"""``python -m usprior ...``: the command line (:mod:`usprior.cli`)."""

import sys

from usprior.cli import main

sys.exit(main())
