"""``python -m server.cli``: the same as the `backprop-live` command."""

import sys

from server.cli import main

sys.exit(main())
