"""``python -m autograder grade SUBMISSIONS --out grades.csv [-j N] [--timeout S] [--memory MB]``.

SUBMISSIONS holds one folder per student with its notebooks, either flat
(``alice/01_vq_tokenization.ipynb``), per assignment (``alice/maskgit/…``) or in nbgrader's
layout (``submitted/alice/maskgit/…``). A student may hand in only some notebooks.

The template course (the source notebooks and a gradebook made by ``nbgrader
generate_assignment``) is built once; then every student is graded by its own process
(autograder/isolation.py) in its own copy of it, ``-j N`` at a time, each killed with its
whole process tree at the wall-time limit. This process alone writes ``grades.csv`` — one row
per student and notebook, always, whatever happened — and copies each student's feedback
HTML with a Markdown summary next to it.

Statuses: ``graded`` (scored normally, the reason says what lost points), ``missing`` (not
handed in), ``penalized`` (a cell used the reference implementation: its checks score 0),
``tampered`` (the notebook reached for the grader or wrote outside its scratch folder: 0),
``timeout`` (the student's whole grading ran past ``--timeout``: 0), ``error`` (the notebook
could not be graded at all, e.g. not a notebook, or the grader crashed: 0).
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder import release, sandbox
from autograder.core import Status

COLUMNS = ["student", "notebook", "status", "score", "max_score", "hidden_score", "hidden_max", "manual_max", "reason",
           "sandbox"]
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # nbgrader ids with odd characters break paths (#1738)
DEFAULT_TIMEOUT = 3600  # seconds per student, all notebooks together: a correct one took ~900 s at load 19 on 2 cores
DEFAULT_MEMORY = 8192  # MB of address space per student; importing torch alone takes ~3.3 GB of it
DEFAULT_CELL_TIMEOUT = 600  # nbgrader's Execute.timeout, as in autograder/nbgrader_config.py (README: choosing it)


def find_submissions(root: Path, source: Path = release.SOLUTIONS) -> dict:
    """student → {notebook name → path}, from any of the three layouts."""
    root = Path(root)
    names = {p.stem for p in source.glob("*.ipynb")}
    base = root / "submitted" if (root / "submitted").is_dir() else root
    students = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        inner = folder / release.ASSIGNMENT if (folder / release.ASSIGNMENT).is_dir() else folder
        students[folder.name] = {p.stem: p for p in sorted(inner.glob("*.ipynb")) if p.stem in names}
    return students


def make_template(work: Path, source: Path) -> Path:
    """The scratch course every student's course is copied from: sources + gradebook, generated once."""
    course = release.make_course(work / "template", source)
    release.run_nbgrader(course, "generate_assignment", release.ASSIGNMENT, "--force")
    return course


def process_tree(pid: int) -> list:
    """``pid`` and all its descendants (kernels start their own session, so a group kill misses them)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def kill_tree(process: subprocess.Popen) -> None:
    """Kill the running ``process`` and everything it started, then reap it."""
    for pid in process_tree(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def snapshot(paths) -> dict:
    """(size, mtime) of every file under ``paths``: what a student must not change."""
    found = {}
    for root in paths:
        root = Path(root)
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


def changed(before: dict, after: dict) -> list:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def rows_for(notebooks: list, files: dict, status: str, reason: str) -> list:
    """The rows of a student whose grading gave nothing usable: submitted notebooks get ``status``."""
    return [{"notebook": n, "status": status, "reason": reason} if n in files else
            {"notebook": n, "status": Status.MISSING, "reason": "not submitted"} for n in notebooks]


def grade_student(student: str, files: dict, template: Path, work: Path, source: Path, options: dict) -> dict:
    """Run autograder/isolation.py for one student and return its result, whatever happens."""
    notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
    folder = work / student
    folder.mkdir()
    job = dict(student=student, files={k: str(v) for k, v in files.items()}, template=str(template),
               scratch=str(folder / "scratch"), source=str(source), result=str(folder / "result.json"), **options)
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    started = time.monotonic()
    with open(folder / "isolation.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "autograder.isolation", str(folder / "job.json")], cwd=folder,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=options["timeout"])
            timed_out = False
        except subprocess.TimeoutExpired:  # kill it while its process tree can still be read
            kill_tree(process)  # kernels run in their own session: a group kill alone would miss them
            timed_out = True
    seconds = time.monotonic() - started
    if timed_out:
        reason = f"grading took longer than {options['timeout']:g} s (an endless loop, or cells that ignore interrupts?)"
        return {"student": student, "rows": rows_for(notebooks, files, Status.TIMEOUT, reason), "feedback": {}, "seconds": seconds,
                "sandbox": options.get("sandbox", "")}
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        tail = (folder / "isolation.log").read_text(errors="replace").strip()[-300:]
        result = {"student": student, "crash": f"no result (exit code {process.returncode}): {tail}"}
    if "crash" in result:
        last = result["crash"].strip().splitlines()[-1] if result["crash"].strip() else "unknown"
        result = {"student": student, "rows": rows_for(notebooks, files, Status.ERROR, f"the grader crashed: {last}"), "feedback": {}}
    result["seconds"] = seconds
    result.setdefault("sandbox", options.get("sandbox", ""))
    return result


def max_points(source: Path) -> dict:
    """notebook → (visible checks' points, discussion questions' points), from the source notebooks."""
    import nbformat

    from autograder import tamper

    found = {}
    for path in sorted(source.glob("*.ipynb")):
        cells = [c for c in nbformat.read(str(path), as_version=4).cells if tamper.nbgrader_meta(c).get("grade")]
        tests = sum(float(tamper.nbgrader_meta(c).get("points", 0)) for c in cells if tamper.is_test_cell(c))
        manual = sum(float(tamper.nbgrader_meta(c).get("points", 0)) for c in cells if not tamper.is_test_cell(c))
        found[path.stem] = (tests, manual)
    return found


def csv_rows(result: dict, work: Path, maxima: dict, hidden_maxima: dict) -> list:
    rows = []
    for row in result["rows"]:
        notebook = row["notebook"]
        filled = {"student": result["student"], "notebook": notebook, "status": row["status"],
                  "score": row.get("score", 0.0), "max_score": row.get("max_score", maxima[notebook][0]),
                  "hidden_score": row.get("hidden_score", 0.0), "hidden_max": row.get("hidden_max", hidden_maxima[notebook]),
                  "manual_max": row.get("manual_max", maxima[notebook][1]),
                  "reason": row["reason"].replace(str(work), "<grading dir>").replace("\n", " "),
                  "sandbox": result.get("sandbox", "")}
        rows.append({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in filled.items()})
    return rows


def markdown_cells(row: dict, width: int = 0) -> str:
    """A CSV row's notebook, status, checks, hidden checks and reason (cut at ``width`` if given) as Markdown cells."""
    reason = row["reason"] if not width or len(row["reason"]) <= width else row["reason"][:width - 1] + "…"
    return (f"{row['notebook']} | {row['status']} | {row['score']}/{row['max_score']} | "
            f"{row['hidden_score']}/{row['hidden_max']} | {reason.replace('|', '/')}")


def copy_figures(figures: dict, target: Path) -> dict:
    """Copy each notebook's feedback figures into ``target``; returns the entries with file names there."""
    copied = {}
    for notebook, entry in sorted(figures.items()):
        copied[notebook] = dict(entry)
        for side, name in (("yours", f"{notebook}.png"), ("reference", f"{notebook}-reference.png")):
            copied[notebook][side] = None
            if entry.get(side) and Path(entry[side]).is_file():
                shutil.copy(entry[side], target / name)
                copied[notebook][side] = name
    return copied


def figure_markdown(entry: dict) -> list:
    """The Markdown lines of one notebook's figure: the student's beside the reference's, or the note instead."""
    lines = [f"Pictured with your functions: {entry['caption']}", ""]
    yours = f"![your functions]({entry['yours']})" if entry.get("yours") else (entry.get("note") or "no picture").replace("|", "/")
    reference = f"![the reference]({entry['reference']})" if entry.get("reference") else ""
    return lines + ["| your functions | the reference |", "|---|---|", f"| {yours} | {reference} |", ""]


def figure_html(page: str, entry: dict, folder: Path) -> str:
    """nbgrader's feedback page with the figure section at its end, the PNGs embedded (the page stands alone)."""
    import base64
    import html

    def image(side: str) -> str:
        if not entry.get(side):
            return html.escape(entry.get("note") or "no picture") if side == "yours" else ""
        data = base64.b64encode((folder / entry[side]).read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{side}" style="max-width:100%">'

    section = (f'<section id="maskgit-figure" style="margin:2em">\n<h2>Pictured with your functions</h2>\n'
               f"<p>{html.escape(entry['caption'])}</p>\n<table>\n<tr><th>your functions</th><th>the reference</th></tr>\n"
               f'<tr><td style="vertical-align:top">{image("yours")}</td>'
               f'<td style="vertical-align:top">{image("reference")}</td></tr>\n</table>\n</section>\n')
    end = page.rfind("</body>")
    return page[:end] + section + page[end:] if end >= 0 else page + section


def summary(result: dict, rows: list) -> str:
    """The student's Markdown summary: per notebook its score and status, then each visible check and its figure."""
    lines = [f"# Grading summary: {result['student']}", "",
             "| notebook | status | checks | hidden checks | reason |", "|---|---|---|---|---|"]
    lines += [f"| {markdown_cells(row)} |" for row in rows]
    lines += ["", "Hidden checks call your functions on other inputs; only their points are shown here.",
              "Discussion questions are graded by hand later.", ""]
    for row in result["rows"]:
        if row.get("checks"):
            lines.append(f"## {row['notebook']}")
            for check in row["checks"]:
                mark = "passed" if check["points"] == check["max_points"] else "FAILED"
                lines.append(f"- {check['cell']} ({check['points']:g}/{check['max_points']:g}, {mark}): {check['message']}")
            lines.append("")
            if row["notebook"] in result.get("figures", {}):
                lines += figure_markdown(result["figures"][row["notebook"]])
    return "\n".join(lines)


def table(rows: list, width: int = 70) -> str:
    """The CSV rows as a Markdown table for the terminal; ``missing`` rows are only counted."""
    handed_in = [r for r in rows if r["status"] != Status.MISSING]
    lines = ["| student | notebook | status | checks | hidden | reason |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['student']} | {markdown_cells(r, width)} |" for r in handed_in]
    missing = len(rows) - len(handed_in)
    if missing:
        lines.append(f"({missing} notebook(s) not handed in: `missing` rows in the CSV)")
    return "\n".join(lines)



def add_limit_args(parser, jobs_help: str = "students graded at the same time (default 1)"):
    """The per-student limits, the source notebooks and the sandbox and figure switches, as flags: shared by
    `grade` and the SLURM wrapper, which hands them on to `grade` with :func:`limit_options`."""
    parser.add_argument("-j", "--jobs", type=int, default=1, help=jobs_help)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="wall-time limit per student, seconds")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="address-space cap per student, MB (0: none)")
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="nbgrader's Execute.timeout per cell, s")
    parser.add_argument("--source", type=Path, default=release.SOLUTIONS, help="the source notebooks (default solutions/)")
    parser.add_argument("--no-sandbox", action="store_true", help="run the students' functions under the write guard alone, "
                        "even where bubblewrap works (to compare; the CSV's sandbox column says guard)")
    parser.add_argument("--no-figures", action="store_true", help="draw no feedback figures (autograder/figures.py), "
                        "e.g. to measure what they add to the grading time")


def limit_options(args) -> list:
    """The flags of :func:`add_limit_args` as parsed into ``args``, written out again for `grade`'s command line."""
    options = ["-j", str(args.jobs), "--timeout", f"{args.timeout:g}", "--memory", str(args.memory),
               "--cell-timeout", str(args.cell_timeout), "--source", str(Path(args.source).resolve())]
    return options + ["--no-sandbox"] * args.no_sandbox + ["--no-figures"] * args.no_figures


def reference_figures(folder: Path, source: Path, log=print) -> str:
    """Draw each notebook's feedback figure with the reference's functions once for the whole grading run (every
    judge puts its student's beside it); a notebook whose picture fails here is drawn by each judge instead."""
    from autograder import figures

    for notebook in sorted(p.stem for p in source.glob("*.ipynb") if p.stem in figures.PICTURES):
        try:
            figures.reference_figure(notebook, folder)
        except Exception as err:  # noqa: BLE001 (a judge draws it again and notes what fails)
            log(f"the reference figure of {notebook} could not be drawn once for all ({type(err).__name__}: {err}); "
                "each judge draws it")
    return str(folder)


def grade(submissions: Path, out: Path, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY,
          cell_timeout: int = DEFAULT_CELL_TIMEOUT, feedback: Path = None, source: Path = release.SOLUTIONS,
          keep: bool = False, log=print, template: Path = None, only=None, on_student=None, sandboxed: bool = True,
          figures: bool = True) -> list:
    """Grade every student under ``submissions``; write ``out`` (CSV) and the feedback folder; return the rows.

    ``template`` reuses a course made by :func:`make_template` from the same ``source``. ``only`` (a set of
    student names) grades those alone, as a shard does; ``on_student(result, rows)`` is called for each
    student while its scratch course still exists (autograder/shard.py keeps the autograded notebooks).
    ``sandboxed=False`` runs the students' functions under the guard alone, as where bubblewrap cannot start.
    ``figures=False`` draws no feedback figures (to measure what they cost).
    """
    from autograder import hidden  # imports torch: only when grading

    submissions, out, source = Path(submissions).resolve(), Path(out).resolve(), Path(source).resolve()
    feedback = Path(feedback).resolve() if feedback else out.parent / "feedback"
    students = find_submissions(submissions, source)
    if only is not None:
        students = {s: f for s, f in students.items() if s in only}
    options = dict(timeout=timeout, memory_mb=memory, cell_timeout=cell_timeout, figures=figures,
                   hidden_max={p.stem: hidden.hidden_max(p.stem) for p in source.glob("*.ipynb")})
    maxima = max_points(source)
    work = Path(tempfile.mkdtemp(prefix="maskgit-grade-"))
    results = {}
    try:
        options["sandbox"], why = sandbox.probe(work / "sandbox-probe") if sandboxed else (sandbox.GUARD, "turned off")
        options["submissions"] = str(submissions)
        if options["sandbox"] != sandbox.BWRAP:
            log(f"no sandbox: {why}; the student's functions run under the write guard alone (CSV column sandbox = guard)")
        valid = {s: f for s, f in students.items() if STUDENT_ID.match(s)}
        for student in sorted(set(students) - set(valid)):
            notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
            results[student] = {"student": student, "feedback": {}, "rows": rows_for(
                notebooks, students[student], Status.ERROR, "the folder name is not a usable student id ([A-Za-z0-9_-] only)")}
        started = time.monotonic()
        template = Path(template) if template else (make_template(work, source) if valid else None)
        if figures and valid:
            options["reference_figures"] = reference_figures(work / "reference-figures", source, log)
        log(f"template course ready ({time.monotonic() - started:.0f} s); grading {len(valid)} student(s), {jobs} at a time")
        # What a student could change to sway others: the submissions and the template course.
        # (Code and sources are left out: an instructor may edit them while a class is graded.)
        watched = [p for p in (submissions, template) if p and not (out.parent == p or p in out.parents)]

        def one(student):
            before = snapshot(watched)
            result = grade_student(student, valid[student], template, work, source, options)
            touched = changed(before, snapshot(watched))
            if touched:
                note = f"files outside its scratch folder changed while it was graded: {', '.join(touched[:3])}"
                for row in result["rows"]:
                    if row["status"] != Status.MISSING:
                        row.update(status=Status.TAMPERED, score=0.0, hidden_score=0.0, reason=note)
            log(f"{student}: {time.monotonic() - started:.0f} s since start, took {result['seconds']:.0f} s")
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for result in pool.map(one, sorted(valid)):
                results[result["student"]] = result
        all_rows = []
        for student in sorted(results):
            rows = csv_rows(results[student], work, maxima, options["hidden_max"])
            all_rows.extend(rows)
            target = feedback / student
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            results[student]["figures"] = copy_figures(results[student].get("figures", {}), target)
            for notebook, html in sorted(results[student].get("feedback", {}).items()):
                page = Path(html).read_text()
                if notebook in results[student]["figures"]:
                    page = figure_html(page, results[student]["figures"][notebook], target)
                (target / f"{notebook}.html").write_text(page)
            (target / "summary.md").write_text(summary(results[student], rows))
            if on_student:
                on_student(results[student], rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(all_rows)
        return all_rows
    finally:
        if keep:
            log(f"kept the scratch courses in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
