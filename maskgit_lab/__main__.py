"""Entry point for ``python -m maskgit_lab``."""

import sys

from maskgit_lab.cli import main

sys.exit(main())
