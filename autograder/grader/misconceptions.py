"""``misconceptions.md`` and ``misconceptions.png`` beside the class CSV: what to re-teach, in one page.

A check that fails names the misconceptions it recognised (the ``Variant`` names of
autograder/checks/variants.py), as data that travels with its verdict: ``core.Result.misconceptions``
→ the judge's ``records.CheckVerdict`` → the row's ``records.CellCheck``. ``grade`` tallies them from its
students' rows, ``merge`` from the shards' ``shard.json`` (each notebook's ``misconceptions``: :func:`entries`).
A student counts once per misconception of a notebook, however many checks named it. The page lists
every misconception that hit a student, most students first, then per notebook with the check, one
student's message and every student; the chart draws the counts.
"""

from dataclasses import dataclass, field
from pathlib import Path

from autograder.records import Row

REPORT, CHART = "misconceptions.md", "misconceptions.png"


def entries(row: Row) -> list:
    """What one notebook's row was found to hold, as shard.json carries it: ``{name, check, message}`` per misconception."""
    return [{"name": name, "check": check.check, "message": check.message}
            for check in row.checks if check.points < check.max_points for name in check.misconceptions]


@dataclass
class Tally:
    """One misconception of one notebook across the class."""

    notebook: str
    name: str
    message: str  # what the first student (by name) read
    checks: list = field(default_factory=list)  # the checks that named it
    students: list = field(default_factory=list)


def tally(found: dict) -> list:
    """``found`` (student, notebook) → its :func:`entries` as one :class:`Tally` per notebook and misconception,
    most students first (then by notebook and name)."""
    tallies = {}
    for (student, notebook), named in sorted(found.items()):
        for entry in named:
            item = tallies.setdefault((notebook, entry["name"]), Tally(notebook, entry["name"], entry["message"]))
            item.checks += [entry["check"]] if entry["check"] not in item.checks else []
            item.students += [student] if student not in item.students else []
    return sorted(tallies.values(), key=lambda t: (-len(t.students), t.notebook, t.name))


def markdown(tallies: list, handed_in: dict) -> str:
    """The page: a table of every misconception, most students first, then a section per notebook.
    ``handed_in``: notebook → how many students handed it in."""
    students = {s for t in tallies for s in t.students}
    lines = ["# Misconceptions: what to re-teach", "",
             f"{len(tallies)} named misconception(s) hit {len(students)} student(s). A failed check names the "
             "misconception it recognised (autograder/checks/variants.py); a student counts once per misconception "
             "of a notebook.", ""]
    if not tallies:
        return "\n".join(lines)
    lines += [f"![students per misconception]({CHART})", "", "| students | notebook | misconception | check |",
              "|---:|---|---|---|"]
    lines += [f"| {len(t.students)} of {handed_in[t.notebook]} | {t.notebook} | {t.name} | {', '.join(t.checks)} |"
              for t in tallies]
    for notebook in sorted({t.notebook for t in tallies}):
        lines += ["", f"## {notebook}: {handed_in[notebook]} student(s) handed it in"]
        for t in (t for t in tallies if t.notebook == notebook):
            lines += ["", f"### {t.name}: {len(t.students)} student(s)", "",
                      f"- check: {', '.join(f'`{c}`' for c in t.checks)}",
                      f"- students: {', '.join(t.students)}",
                      f"- {t.students[0]} read: {t.message.replace(chr(10), ' ')}"]
    return "\n".join(lines) + "\n"


def chart(tallies: list, path: Path) -> None:
    """A horizontal bar per misconception (most students on top), its length the students it hit."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 1 + 0.35 * len(tallies)))
    axes = figure.add_subplot()
    labels = [f"{t.notebook[:2]} · {t.name}" for t in reversed(tallies)]
    axes.barh(labels, [len(t.students) for t in reversed(tallies)], color="tab:red")
    axes.set_xlabel("students")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_title("named misconceptions, by students hit")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write(found: dict, folder: Path) -> Path:
    """Write ``misconceptions.md`` (and its chart, when anything was named) into ``folder`` from ``found``:
    (student, notebook) → :func:`entries`, for every notebook handed in. Returns the page's path."""
    folder = Path(folder)
    tallies = tally(found)
    handed_in = {}
    for _, notebook in found:
        handed_in[notebook] = handed_in.get(notebook, 0) + 1
    (folder / CHART).unlink(missing_ok=True)  # a chart of an earlier run must not sit beside this page
    if tallies:
        chart(tallies, folder / CHART)
    (folder / REPORT).write_text(markdown(tallies, handed_in))
    return folder / REPORT


def read(path: Path) -> dict:
    """(notebook, misconception) → its students, read back from a ``misconceptions.md`` (what the examples check)."""
    listed, notebook, name = {}, None, None
    for line in Path(path).read_text().splitlines():
        if line.startswith("## "):
            notebook = line[3:].split(":")[0]
        elif line.startswith("### "):
            name = line[4:].rsplit(": ", 1)[0]
        elif line.startswith("- students: "):
            listed[(notebook, name)] = line[len("- students: "):].split(", ")
    return listed
