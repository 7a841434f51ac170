"""The student release in JupyterLab: Run All stops at the first TODO and says which one; the
explorer still works on the package's reference implementation.

notebooks/04_iterative_decoding.ipynb as a student gets it. Run ▸ Run All Cells must stop at the
check under the first TODO with a message naming the check and the TODO to finish, and run
nothing after it. The student then runs the cell that loads the shipped models and the explorer
cell (click, Shift+Enter): the explorer must draw and answer a change of schedule with the
package's counts. Screenshots: artifacts/browser/release-*.png.
"""

import nbformat
import pytest
from browser_lab import ROOT, Explorer, assert_shows_counts

pytestmark = pytest.mark.browser

RELEASE = "notebooks/04_iterative_decoding.ipynb"


def code_cell_ids() -> list:
    """The nbgrader grade_id of each code cell, in the order the page shows them."""
    notebook = nbformat.read(ROOT / RELEASE, as_version=4)
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells if c.cell_type == "code"]


def test_release_stops_at_the_first_todo_and_the_explorer_still_works(course_page):
    ids = code_cell_ids()
    page = course_page(RELEASE)
    page.run_all(timeout=300)

    prompts = page.prompts()
    first_check = ids.index("04_check_gumbel_noise")
    assert ids[first_check - 1] == "04_gumbel_noise", "the first TODO is expected right above its check"
    ran = [i for i, p in enumerate(prompts) if p not in ("[ ]:", "[*]:")]
    assert ran == list(range(first_check + 1)), f"Run All should stop at the first TODO's check: {prompts}"
    cells = page.code_cells()
    errors = [page.error_outputs(cell) for cell in cells]
    assert [i for i, e in enumerate(errors) if e] == [first_check], "only the first TODO's check may show an error"
    message = cells[first_check].text
    assert "check_gumbel_noise" in message and "not implemented yet: finish the TODO above" in message, message
    page.screenshot("release-first-todo", cells[first_check])

    page.run_cell(ids.index("04_loop_model"), timeout=120)
    page.run_cell(ids.index("04_explorer"), timeout=120)
    explorer = Explorer(page)
    assert explorer.drawn(), f"the explorer shows no finished drawing: {explorer.text()!r}"
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
