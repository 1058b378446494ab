"""``python -m stateshift`` runs the command line."""

import sys

from stateshift.cli.main import main

sys.exit(main())
