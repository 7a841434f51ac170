"""``python -m autograder.slurm SUBMISSIONS --shards N --dir DIR [--course COURSE] …``: submit the array and the merge."""

import sys

from autograder.slurm import main

sys.exit(main())
