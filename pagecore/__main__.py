"""`python -m pagecore`: the same command as `pagecore`."""

import sys

from pagecore.cli import main

sys.exit(main())
