"""``python -m unpaired`` runs the ``unpaired`` command."""

import sys

from unpaired.cli import main

sys.exit(main())
