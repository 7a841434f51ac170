"""How long each visible check takes on its reference answer, against the budget of one check.

A test cell calls its check while the student waits, and the grader calls every check again
outside the notebook, so each one should answer well within ``CHECK_BUDGET_S`` on a 2-core CPU.
This is measured here (``python -m autograder bench``, part of ``make bench``), never asserted
in a test: a busy machine makes any check slow without a defect.
"""

from autograder.checks import reference_twins
from autograder.checks import visible_checks
from maskgit_lab.bench import best_time

CHECK_BUDGET_S = 2.0  # seconds per check, reference answer, 2 CPU cores


def bench_checks(repeats: int = 3) -> list:
    """One row per check: the fastest of ``repeats`` runs, and its share of the budget."""
    checks = visible_checks()
    rows = []
    for name, reference in reference_twins().items():
        seconds = best_time(lambda: checks[name](reference), repeats)
        rows.append({"name": name, "seconds": seconds, "ratio": seconds / CHECK_BUDGET_S})
    return rows


def report(rows: list) -> str:
    lines = [f"{row['name']:<36} {row['seconds']:7.3f} s = {row['ratio']:5.2f} × budget"
             + ("   OVER BUDGET" if row["ratio"] > 1 else "") for row in rows]
    over = sum(row["ratio"] > 1 for row in rows)
    lines.append(f"{len(rows)} checks, budget {CHECK_BUDGET_S:g} s each: " + (f"{over} over budget" if over else "all within"))
    return "\n".join(lines)
