"""Allow ``python -m bookbag.cli``."""

import sys

from bookbag.cli import main

sys.exit(main())
