"""``python -m pixelwise`` runs the CLI."""

import sys

from pixelwise.cli import main

sys.exit(main())
