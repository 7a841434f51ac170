"""``python -m autograder.student JOB.json``: grade one student (autograder/student/student.py)."""

import sys

from autograder.student.student import main

sys.exit(main())
