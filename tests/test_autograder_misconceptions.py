"""autograder/grader/misconceptions.py: the class's misconception report, from crafted rows (no grading)."""

from PIL import Image

from autograder.core import Status
from autograder.grader import misconceptions
from autograder.records import CellCheck, Row

NB01, NB02 = "01_vq_tokenization", "02_multi_head_attention"
DOT = CellCheck("01_check_nearest_code", "check_nearest_code", 0.0, 2.0, "expected [1], got [2]: the dot product ...",
                ["dot product"])
STOPS = CellCheck("01_check_straight_through", "check_straight_through", 0.0, 2.0, "no gradient reaches z_e",
                  ["gradient stops at the codebook"])
AXIS = CellCheck("02_check_sdpa", "check_sdpa", 0.0, 2.0, "the softmax runs over the wrong axis", ["softmax over the queries"])
PASSED = CellCheck("01_check_vq_losses", "check_vq_losses", 3.0, 3.0, "all good")


def row(notebook, *checks):
    return Row(notebook, Status.GRADED, "", checks=list(checks))


def class_rows() -> dict:
    """Four students: "dot product" hits three of them in 01, once twice (two checks), the other two once each."""
    rows = {("ada", NB01): row(NB01, DOT, STOPS), ("bo", NB01): row(NB01, DOT, PASSED), ("cy", NB01): row(NB01, PASSED),
            ("di", NB01): row(NB01, DOT, CellCheck("01_check_other", "check_other", 0.0, 1.0, "again", ["dot product"])),
            ("bo", NB02): row(NB02, AXIS), ("cy", NB02): row(NB02)}
    return {key: misconceptions.entries(r) for key, r in rows.items()}


def test_a_row_names_only_the_checks_that_lost_points_with_their_message():
    passed_but_named = CellCheck("01_c", "check_c", 1.0, 1.0, "all good", ["dot product"])
    assert misconceptions.entries(row(NB01, DOT, PASSED, passed_but_named)) == [
        {"name": "dot product", "check": "check_nearest_code", "message": DOT.message}]


def test_the_tally_counts_each_student_once_most_students_first_notebooks_apart():
    tallies = misconceptions.tally(class_rows())
    assert [(t.notebook, t.name, t.students) for t in tallies] == [
        (NB01, "dot product", ["ada", "bo", "di"]),
        (NB01, "gradient stops at the codebook", ["ada"]),
        (NB02, "softmax over the queries", ["bo"])]
    assert tallies[0].checks == ["check_nearest_code", "check_other"]
    assert tallies[0].message == DOT.message  # what the first student read


def test_the_page_lists_each_misconception_under_its_name_with_counts_checks_and_students(tmp_path):
    page = misconceptions.write(class_rows(), tmp_path)
    text = page.read_text()
    assert page == tmp_path / misconceptions.REPORT
    assert misconceptions.read(page) == {(NB01, "dot product"): ["ada", "bo", "di"],
                                         (NB01, "gradient stops at the codebook"): ["ada"],
                                         (NB02, "softmax over the queries"): ["bo"]}
    table = [line for line in text.splitlines() if line.startswith("| ") and "of" in line]
    assert table[0] == f"| 3 of 4 | {NB01} | dot product | check_nearest_code, check_other |"
    assert table[-1] == f"| 1 of 2 | {NB02} | softmax over the queries | check_sdpa |"
    assert f"## {NB01}: 4 student(s) handed it in" in text and f"## {NB02}: 2 student(s) handed it in" in text
    assert f"- ada read: {DOT.message}" in text
    assert text.index(f"## {NB01}") < text.index("### gradient stops") < text.index(f"## {NB02}")
    with Image.open(tmp_path / misconceptions.CHART) as chart:
        assert chart.width > 0 and f"]({misconceptions.CHART})" in text


def test_a_class_without_named_misconceptions_says_so_and_leaves_no_old_chart(tmp_path):
    (tmp_path / misconceptions.CHART).write_bytes(b"an earlier run's chart")
    page = misconceptions.write({("ada", NB01): [], ("bo", NB01): []}, tmp_path)
    assert "0 named misconception(s) hit 0 student(s)" in page.read_text()
    assert misconceptions.read(page) == {} and not (tmp_path / misconceptions.CHART).exists()


def test_every_example_misconception_is_a_variant_of_the_registry():
    from autograder import examples
    from autograder.checks import variants

    named = {e.misconception for e in examples.EXAMPLES_TABLE if e.misconception}
    assert named and named <= {v.name for v in variants.registry()}
