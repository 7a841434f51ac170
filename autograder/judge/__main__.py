"""``python -m autograder.judge …``: judge one notebook (autograder/judge/judge.py; the arguments: autograder/judge/__init__.py)."""

import sys

from autograder.judge.judge import main

sys.exit(main())
