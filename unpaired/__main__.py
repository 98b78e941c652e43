"""``python -m unpaired`` runs the ``unpaired`` command."""

import sys

from .cli import main

sys.exit(main())
