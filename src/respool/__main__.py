"""``python -m respool``: the same as the ``respool`` command."""

import sys

from respool.cli import main

sys.exit(main())
