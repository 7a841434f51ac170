"""The feedback figures (autograder/judge/figures.py), drawn by the judge after the checks, without nbgrader.

The reference answers draw each notebook's figure pixel for pixel as the reference package does; a
bug changes the panels where it acts and leaves the others alone; a student function that raises,
hangs or asks for too much memory gets a one-line note instead of a picture and keeps its points.
(That the grader copies, links and embeds them: tests/test_autograder_grade.py.)
"""

import tempfile

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from submissions import SOURCES, judge_with_figure

from autograder import examples
from autograder.judge import figures, hidden
from maskgit_lab.configs import get_config

NB01, NB04, NB06 = "01_vq_tokenization", "04_iterative_decoding", "06_generation_and_guidance"


@pytest.fixture(autouse=True)
def scratch_tmp(tmp_path, monkeypatch):
    """Set-up cells make temporary folders: keep them inside the test's own tmp_path; the judge runs in it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    monkeypatch.chdir(tmp_path)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def full_marks(report) -> bool:
    return (all(t.points == t.max_points for t in report.tests.values())
            and all(h.points == h.max_points for h in report.hidden) and not report.errors)


def panel_boxes(notebook: str) -> list:
    """Each panel's (rows, columns) slice in the figure's PNG: the layout is fixed, so the reference's holds for all."""
    picture = figures.PICTURES[notebook]
    fig = picture.draw(picture.collect(picture.reference))
    FigureCanvasAgg(fig).draw()
    height = int(fig.bbox.height)
    boxes = []
    for ax in fig.axes:  # a panel is an image, or an axes without one (a bar chart)
        for panel in ax.images or [ax]:
            x0, y0, x1, y1 = panel.get_window_extent().extents
            boxes.append((slice(height - int(y1) + 2, height - int(y0) - 2), slice(int(x0) + 2, int(x1) - 2)))  # inside the frame
    return boxes


@pytest.mark.parametrize("notebook", sorted(SOURCES))
def test_the_reference_answers_draw_the_references_figure_pixel_for_pixel(notebook, judged):
    report, out = judged(notebook)
    figure = report.figure
    assert figure.note is None and figure.caption == figures.PICTURES[notebook].caption
    yours, reference = pixels(out / figure.yours), pixels(out / figure.reference)
    assert yours.shape == reference.shape and yours.shape[0] > 200
    assert np.array_equal(yours, reference)
    assert full_marks(report)


def test_the_judge_puts_the_students_figure_beside_the_reference_drawn_once_for_the_run(tmp_path):
    shared = tmp_path / "reference-figures"
    drawn = figures.reference_figure(NB04, shared)
    report, out = judge_with_figure(tmp_path, NB04, shared=shared)
    assert report.figure.reference == str(drawn) and sorted(p.name for p in out.iterdir()) == [f"{NB04}.png"]
    assert np.array_equal(pixels(out / report.figure.yours), pixels(drawn))


# (example, notebook, panels that must stay as the reference draws them, panels that must change), by index in
# panel_boxes: 01 adds (emoji, decoded) per column then the usage bar; 04 is rows of input, steps 1…8, result, truth;
# 06 is a row of four classes at T = 8, then the same at T = 1.
STEPS = 8
WHERE = [
    ("deleted_test_cell", NB01, [0, 2, 4, 6], [1, 3, 5, 7, 8]),  # argmax of the dot product: other codes, other usage
    ("keep_count_from_current", NB04,  # step 1 counts from n0 either way; from step 2 on the counts differ
     [r * (STEPS + 3) + c for r in range(4) for c in (0, 1, STEPS + 2)], [r * (STEPS + 3) + STEPS + 1 for r in range(4)]),
    ("logits_of_the_empty_canvas", NB06, [4, 5, 6, 7], [0, 1, 2, 3]),  # T = 1 needs one set of logits anyway; T = 8 changes
]


@pytest.mark.parametrize("student, notebook, same, changed", WHERE, ids=[w[0] for w in WHERE])
def test_a_bug_changes_the_figure_where_it_acts_and_nowhere_else(student, notebook, same, changed, judged):
    report, out = judged(notebook, student)
    assert report.figure.note is None
    yours, reference = pixels(out / report.figure.yours), pixels(out / report.figure.reference)
    boxes = panel_boxes(notebook)
    assert [i for i in same if not np.array_equal(yours[boxes[i]], reference[boxes[i]])] == []
    assert [i for i in changed if np.array_equal(yours[boxes[i]], reference[boxes[i]])] == []
    if notebook == NB04:  # and the decoding history itself: at least one image's step 2 is drawn differently
        step_two = [r * (STEPS + 3) + 2 for r in range(4)]
        assert any(not np.array_equal(yours[boxes[i]], reference[boxes[i]]) for i in step_two)


TOKENS = get_config("default").transformer.num_tokens  # the shipped tokenizer's tokens per image
ON_THE_FIGURES_INPUT = f"if z.shape == ({4 * TOKENS}, 64):  # only the figure's four emoji: 4 × {TOKENS} tokens of width 64\n"
MISBEHAVES = {
    "raises": ("        raise RuntimeError('only on big inputs')\n", "your code raised RuntimeError: only on big inputs"),
    "hangs": ("        while True:\n            pass\n", "did not finish the picture within 5 s"),
    "hogs_memory": ("        hoard = torch.empty(2**29)  # 2 GB of address space, more than the picture's limit\n",
                    "ran out of memory"),
}


@pytest.mark.parametrize("how", sorted(MISBEHAVES))
def test_a_function_that_misbehaves_only_for_the_figure_gets_a_note_and_keeps_every_point(how, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "FIGURE_SECONDS", 5)
    body, note = MISBEHAVES[how]
    code = examples.NEAREST.replace('    """Index of the nearest codebook row for every row of z."""\n',
                                    '    """Index of the nearest codebook row for every row of z."""\n    '
                                    + ON_THE_FIGURES_INPUT + body)
    report, out = judge_with_figure(tmp_path, NB01, {"01_nearest_code": code})
    figure = report.figure
    assert figure.yours is None and (out / figure.reference).exists()
    assert figure.note.startswith("no picture: ") and note in figure.note and "\n" not in figure.note
    assert full_marks(report)


def test_an_unfinished_todo_gets_a_note_naming_it(tmp_path):
    unfinished = "def nearest_code(z, codebook):\n    raise NotImplementedError\n"
    report, _ = judge_with_figure(tmp_path, NB01, {"01_nearest_code": unfinished})
    assert report.figure.note == "no picture: your code raised NotImplementedError"


def test_captions_name_no_hidden_check():
    secrets = [item.check.__name__ for items in hidden.HIDDEN.values() for item in items]
    for picture in figures.PICTURES.values():
        assert not [s for s in secrets if s in picture.caption]
    assert set(figures.PICTURES) == set(SOURCES)
