"""``python -m newsletter`` runs the command line."""

import sys

from newsletter.cli import main

sys.exit(main())
