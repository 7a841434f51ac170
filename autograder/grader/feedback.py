"""What a student reads, written by the grader: ``feedback/<student>/`` and the terminal's table.

Per student: nbgrader's HTML page per notebook with the notebook's feedback figure appended (the
PNGs embedded, so the page stands alone), the figures themselves, and ``summary.md``: per notebook
its status and scores, then each visible check's message and the figure. The hidden checks show
only their total.
"""

import base64
import html
import shutil
from pathlib import Path

from autograder.core import Status
from autograder.records import Figure, StudentResult


def markdown_cells(row: dict, width: int = 0) -> str:
    """A CSV row's notebook, status, checks, hidden checks and reason (cut at ``width`` if given) as Markdown cells."""
    reason = row["reason"] if not width or len(row["reason"]) <= width else row["reason"][:width - 1] + "…"
    return (f"{row['notebook']} | {row['status']} | {row['score']}/{row['max_score']} | "
            f"{row['hidden_score']}/{row['hidden_max']} | {reason.replace('|', '/')}")


def copy_figures(figures: dict, target: Path) -> dict:
    """Copy each notebook's feedback figures into ``target``; returns the entries with file names there."""
    copied = {}
    for notebook, entry in sorted(figures.items()):
        copied[notebook] = Figure(entry.caption, note=entry.note)
        for side, name in (("yours", f"{notebook}.png"), ("reference", f"{notebook}-reference.png")):
            path = getattr(entry, side)
            if path and Path(path).is_file():
                shutil.copy(path, target / name)
                setattr(copied[notebook], side, name)
    return copied


def figure_markdown(entry: Figure) -> list:
    """The Markdown lines of one notebook's figure: the student's beside the reference's, or the note instead."""
    lines = [f"Pictured with your functions: {entry.caption}", ""]
    yours = f"![your functions]({entry.yours})" if entry.yours else (entry.note or "no picture").replace("|", "/")
    reference = f"![the reference]({entry.reference})" if entry.reference else ""
    return lines + ["| your functions | the reference |", "|---|---|", f"| {yours} | {reference} |", ""]


def figure_html(page: str, entry: Figure, folder: Path) -> str:
    """nbgrader's feedback page with the figure section at its end, the PNGs embedded (the page stands alone)."""

    def image(side: str) -> str:
        name = getattr(entry, side)
        if not name:
            return html.escape(entry.note or "no picture") if side == "yours" else ""
        data = base64.b64encode((folder / name).read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{side}" style="max-width:100%">'

    section = (f'<section id="maskgit-figure" style="margin:2em">\n<h2>Pictured with your functions</h2>\n'
               f"<p>{html.escape(entry.caption)}</p>\n<table>\n<tr><th>your functions</th><th>the reference</th></tr>\n"
               f'<tr><td style="vertical-align:top">{image("yours")}</td>'
               f'<td style="vertical-align:top">{image("reference")}</td></tr>\n</table>\n</section>\n')
    end = page.rfind("</body>")
    return page[:end] + section + page[end:] if end >= 0 else page + section


def summary(result: StudentResult, rows: list) -> str:
    """The student's Markdown summary: per notebook its score and status, then each visible check and its figure."""
    lines = [f"# Grading summary: {result.student}", "",
             "| notebook | status | checks | hidden checks | reason |", "|---|---|---|---|---|"]
    lines += [f"| {markdown_cells(row)} |" for row in rows]
    lines += ["", "Hidden checks call your functions on other inputs; only their points are shown here.",
              "Discussion questions are graded by hand later.", ""]
    for row in result.rows:
        if row.checks:
            lines.append(f"## {row.notebook}")
            for check in row.checks:
                mark = "passed" if check.points == check.max_points else "FAILED"
                lines.append(f"- {check.cell} ({check.points:g}/{check.max_points:g}, {mark}): {check.message}")
            lines.append("")
            if row.notebook in result.figures:
                lines += figure_markdown(result.figures[row.notebook])
    return "\n".join(lines)


def write_feedback(result: StudentResult, rows: list, target: Path) -> None:
    """The student's feedback folder ``target``, made afresh: pages, figures and summary; ``rows`` are its CSV rows.

    The result's figures name their files in ``target`` afterwards.
    """
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    result.figures = copy_figures(result.figures, target)
    for notebook, page_path in sorted(result.feedback.items()):
        page = Path(page_path).read_text()
        if notebook in result.figures:
            page = figure_html(page, result.figures[notebook], target)
        (target / f"{notebook}.html").write_text(page)
    (target / "summary.md").write_text(summary(result, rows))


def table(rows: list, width: int = 70) -> str:
    """The CSV rows as a Markdown table for the terminal; ``missing`` rows are only counted."""
    handed_in = [r for r in rows if r["status"] != Status.MISSING]
    lines = ["| student | notebook | status | checks | hidden | reason |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['student']} | {markdown_cells(r, width)} |" for r in handed_in]
    missing = len(rows) - len(handed_in)
    if missing:
        lines.append(f"({missing} notebook(s) not handed in: `missing` rows in the CSV)")
    return "\n".join(lines)
