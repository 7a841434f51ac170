"""The student release in JupyterLab: Run All runs the whole notebook, every check cell shows its
state, and the explorer works on the package's reference implementation.

notebooks/04_iterative_decoding.ipynb as a student gets it, every TODO unfinished. Run ▸ Run All
Cells must run every code cell: each check cell shows a red failure that names its check and the
TODO to finish, without the grader's frames, and no other cell shows an error. The explorer at the
bottom must draw and answer a change of schedule with the package's counts. Screenshots:
artifacts/browser/release-*.png.
"""

import re

import nbformat
import pytest
from browser_lab import REDRAW_S, ROOT, Explorer, assert_shows_counts

pytestmark = pytest.mark.browser

RELEASES = {  # notebook → (its check cells, a cell that falls back to the reference, the reference it names)
    "04_iterative_decoding": (6, "04_gumbel_pic", "maskgit_lab.decoding.gumbel_noise"),
    "06_generation_and_guidance": (4, "06_dropout_pic", "maskgit_lab.mvtm.drop_labels"),
}


def code_cells(release: str) -> tuple:
    """(nbgrader grade_id, source) of each code cell, in the order the page shows them."""
    notebook = nbformat.read(ROOT / release, as_version=4)
    return tuple(zip(*[(c.metadata.get("nbgrader", {}).get("grade_id"), c.source) for c in notebook.cells
                       if c.cell_type == "code"]))


def run_all_shows_every_failed_check(course_page, name: str) -> tuple:
    """Run All on the release of ``name``: every cell runs, exactly the check cells show their failure (no frame of the
    grader), a later section says it falls back to the reference. Returns (page, grade ids, cells, check indices)."""
    count, fallback_cell, reference = RELEASES[name]
    release = f"notebooks/{name}.ipynb"
    ids, sources = code_cells(release)
    page = course_page(release)
    page.run_all()

    prompts = page.prompts()
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"Run All should run every code cell: {prompts}"
    checks = [i for i, gid in enumerate(ids) if gid.startswith(f"{name[:2]}_check_")]
    assert len(checks) == count and all(sources[i].startswith("show(check_") for i in checks), ids
    cells = page.code_cells()
    errors = [page.error_outputs(cell) for cell in cells]
    assert [i for i, e in enumerate(errors) if e] == checks, "exactly the check cells should show a failure"
    for i in checks:
        shown = "\n".join(errors[i])
        check = re.search(r"show\((check_\w+)\(", sources[i])[1]
        assert shown.startswith(f"[FAILED] {check} (0/") and "not implemented yet: finish the TODO above" in shown, shown
        assert "Traceback" not in shown and "autograder" not in shown, f"the grader's internals show: {shown}"
    fallback = cells[ids.index(fallback_cell)].text
    assert f"Using the reference {reference} below" in fallback, fallback
    return page, ids, cells, checks


def test_run_all_runs_the_whole_release_shows_every_failed_check_and_draws_the_explorer(course_page):
    page, _, cells, checks = run_all_shows_every_failed_check(course_page, "04_iterative_decoding")
    # JupyterLab 4 draws only the cells in view: scroll, then wait until the first failure is painted.
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", cells[checks[0] - 1])
    page.wait(lambda: page.error_outputs(cells[checks[0]]) and cells[checks[0]].is_displayed(), REDRAW_S,
              "the first failed check is not drawn")
    page.screenshot("release-failed-checks")

    explorer = Explorer(page)
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", explorer.root)
    page.wait(explorer.drawn, REDRAW_S, f"the explorer shows no finished drawing after Run All: {explorer.text()!r}")
    assert_shows_counts(explorer)
    assert page.error_outputs(explorer.root) == [] and page.widget_placeholders() == []
    before = explorer.drawn()
    page.screenshot("release-explorer-before", explorer.root)
    explorer.choose_schedule("sqrt")
    explorer.wait_redraw(before, "choosing sqrt")
    page.screenshot("release-explorer-after", explorer.root)
    assert explorer.settings()["schedule"] == "sqrt"
    assert_shows_counts(explorer)
    assert page.error_outputs(explorer.root) == [] and page.console_errors() == [] and page.log_entries() == 0


@pytest.mark.parametrize("name", ["06_generation_and_guidance"])
def test_run_all_runs_a_release_without_an_explorer_and_shows_every_failed_check(course_page, name):
    page, *_ = run_all_shows_every_failed_check(course_page, name)
    assert page.console_errors() == []
