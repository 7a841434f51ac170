"""The checks of notebook 06 (autograder/checks/generation.py) and its misconceptions (the notebook 06 section of
autograder/checks/variants.py), written as a student would write them: the solution cell with one line changed.
The check that owns the property names the variant; the notebook's other checks of the same function pass."""

import itertools

import nbformat
import pytest
import torch

from autograder import examples
from autograder.cells import grade_id, is_solution_cell
from autograder.checks import generation as checks
from autograder.checks import variants
from autograder.checks.decoding import check_decode_step
from autograder.earlier import earlier_answer
from autograder.release import SOLUTIONS
from maskgit_lab import decoding, generate, mvtm

NB06 = SOLUTIONS / "06_generation_and_guidance.ipynb"
CELLS = {grade_id(cell): examples.strip_markers(cell.source)
         for cell in nbformat.read(str(NB06), as_version=4).cells if is_solution_cell(cell)}

# The checks notebook 06's test cells run on each function, in the notebook's order.
CHECKS = {
    "06_drop_labels": [checks.check_drop_labels],
    "06_guided_logits": [checks.check_guided_logits, checks.check_guidance_one_pass],
    "06_generate_codes": [checks.check_generate_codes],
}
VALUES, ONE_PASS = CHECKS["06_guided_logits"]

DRAW = "dropped = torch.rand(labels.shape, generator=generator) < p_uncond"
FILL = "return labels.masked_fill(dropped, null_class)"
PASS = "both = model(torch.cat([tokens, tokens]), torch.cat([labels, null]))"
SPLIT = "cond, uncond = both.chunk(2)"
COMBINE = "return uncond + guidance * (cond - uncond)"
CANVAS = "current = torch.full((B, num_tokens), mask_id)"
STEP = "current, mask = step(logits(current, labels, t), current, mask, n0, t, steps, schedule, temperature, mask_id,"

# (variant name, solution cell, (old, new) edits, the check that owns it)
BUGS = [
    ("labels kept with probability p_uncond", "06_drop_labels", [(DRAW, DRAW.replace("< p_uncond", ">= p_uncond"))], None),
    ("dropped to a real class", "06_drop_labels", [(FILL, "return labels.masked_fill(dropped, 0)")], None),
    ("one coin for the whole batch", "06_drop_labels",
     [(DRAW, "dropped = (torch.rand((), generator=generator) < p_uncond).expand(labels.shape)")], None),
    ("p_uncond hard-coded", "06_drop_labels", [(DRAW, DRAW.replace("< p_uncond", "< 0.1"))], None),
    ("guidance sign reversed", "06_guided_logits", [(COMBINE, "return uncond - guidance * (cond - uncond)")], VALUES),
    ("guidance halves swapped", "06_guided_logits", [(SPLIT, "uncond, cond = both.chunk(2)")], VALUES),
    ("guidance on probabilities", "06_guided_logits",
     [(COMBINE, "return uncond.softmax(-1) + guidance * (cond.softmax(-1) - uncond.softmax(-1))")], VALUES),
    ("unconditional half with a real class", "06_guided_logits",
     [("null = torch.full_like(labels, null_class)", "null = torch.zeros_like(labels)")], VALUES),
    ("labels dropped at inference", "06_guided_logits", [(PASS, "both = model(torch.cat([tokens, tokens]))")], VALUES),
    ("unconditional half never computed", "06_guided_logits",
     [(PASS + "  # (2B, N, K): one pass for both halves", "pass"), (SPLIT + "  # (B, N, K) each", "pass"),
      (COMBINE, "return model(tokens, labels)")], VALUES),
    ("two forward passes", "06_guided_logits",
     [(PASS + "  # (2B, N, K): one pass for both halves", "pass"),
      (SPLIT + "  # (B, N, K) each", "cond, uncond = model(tokens, labels), model(tokens, null)")], ONE_PASS),
    ("canvas of code 0", "06_generate_codes", [(CANVAS, "current = torch.zeros(B, num_tokens, dtype=torch.long)")], None),
    ("logits of the empty canvas only", "06_generate_codes",
     [(STEP, "current, mask = step(first, current, mask, n0, t, steps, schedule, temperature, mask_id,"),
      ("    for t in range(steps):", "    first = logits(current, labels, 0)\n    for t in range(steps):")], None),
    ("n0 recounted every step", "06_generate_codes", [(STEP, STEP.replace(", n0, t,", ", mask.sum(dim=1), t,"))], None),
]
ALL = variants.DROP + variants.GUIDANCE + variants.ONE_PASS + variants.CANVAS
BY_NAME = {v.name: v for v in ALL}


def answer(cell: str, edits):
    """The solution cell with ``edits`` applied, run with the notebook's names; returns the function it defines."""
    source = CELLS[cell]
    for old, new in edits:
        assert old in source, f"{old!r} is no longer in the solution of {cell}"
        source = source.replace(old, new)
    namespace = {"torch": torch}
    exec(compile(source, f"<{cell}>", "exec"), namespace)
    return namespace[cell.split("_", 1)[1]]


def test_every_variant_has_a_buggy_answer():
    assert len(BY_NAME) == len(ALL), "variant names must be unique"
    assert {name for name, *_ in BUGS} == set(BY_NAME)


@pytest.mark.parametrize("cell", sorted(CHECKS))
def test_the_solution_cells_pass_every_check(cell):
    for check in CHECKS[cell]:
        result = check(answer(cell, []))
        assert result.passed, result


@pytest.mark.parametrize("name, cell, edits, owner", BUGS, ids=[b[0] for b in BUGS])
def test_the_owner_names_the_variant_and_no_other_check_fails(name, cell, edits, owner, capfd):
    student = answer(cell, edits)
    owner = owner or CHECKS[cell][0]
    for check in CHECKS[cell]:
        result = check(student)
        if check is owner:
            assert result.points == 0 and BY_NAME[name].words in result.message and result.misconceptions == (name,), result
        else:
            assert result.passed, f"{name} must not fail {result.check}: {result.message}"
    assert capfd.readouterr().err == ""


def test_the_variants_are_told_apart_on_the_crafted_inputs():
    drops = [checks._drop_signature(fn) for fn in [mvtm.drop_labels] + [v.wrong for v in variants.DROP]]
    guided = [checks.guided_answer(fn, 3.0)[0] for fn in [decoding.guided_logits] + [v.wrong for v in variants.GUIDANCE]]
    loops = [checks.canvas_codes(fn) for fn in [generate.generate_codes] + [v.wrong for v in variants.CANVAS]]
    assert len(set(drops)) == len(drops)
    for a, b in itertools.combinations(guided, 2):
        assert not torch.allclose(a, b, atol=1e-3)
    for a, b in itertools.combinations(loops, 2):
        assert not all(map(torch.equal, a, b))


# Other right answers, as a student might write them.
RIGHT = [
    ("06_drop_labels", [(DRAW, "dropped = torch.bernoulli(torch.full(labels.shape, float(p_uncond)), generator=generator).bool()")]),
    ("06_drop_labels", [(FILL, "return torch.where(dropped, torch.full_like(labels, null_class), labels)")]),
    ("06_guided_logits", [(PASS, "both = model(torch.cat([tokens, tokens]), torch.cat([null, labels]))"),
                          (SPLIT, "uncond, cond = both.chunk(2)")]),
    ("06_guided_logits", [(COMBINE, "return (1 - guidance) * uncond + guidance * cond")]),
    ("06_generate_codes", [(CANVAS, "current = torch.full((B, num_tokens), mask_id, dtype=torch.long)")]),
]


@pytest.mark.parametrize("cell, edits", RIGHT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(RIGHT)])
def test_other_right_answers_get_full_marks(cell, edits):
    for check in CHECKS[cell]:
        result = check(answer(cell, edits))
        assert result.passed, result


# Mistakes no variant stands for, and what the student reads about them.
WRONG = [
    ("06_drop_labels", [(FILL, "return labels.masked_fill_(dropped, null_class)")], "changed the labels it was given"),
    ("06_drop_labels", [(DRAW, "dropped = torch.rand(labels.shape) < p_uncond")], "from the generator it is given"),
    ("06_guided_logits", [(COMBINE, "return uncond + 3.0 * (cond - uncond)")], "use the guidance scale you are given"),
    ("06_generate_codes", [("for t in range(steps):", "for t in range(steps - 1):")], "still hold the mask id"),
    ("06_generate_codes", [(STEP, STEP.replace("logits(current, labels, t)", "logits(current, labels.flip(0), t)"))],
     "the images' own labels"),
    ("06_generate_codes", [(STEP, STEP.replace("logits(current, labels, t)", "logits(current, labels, 0)"))],
     "each step's own t"),
]


@pytest.mark.parametrize("cell, edits, words", WRONG, ids=[w[2] for w in WRONG])
def test_each_other_mistake_gets_zero_and_says_what_to_do(cell, edits, words):
    result = CHECKS[cell][0](answer(cell, edits))
    assert result.points == 0 and words in result.message, result


def test_two_passes_are_named_even_when_the_values_are_right():
    two = answer("06_guided_logits", BUGS[[b[0] for b in BUGS].index("two forward passes")][2])
    assert VALUES(two).passed and ONE_PASS(two).points == 0


def release_of_04(tmp_path, decode_step_source: str):
    """notebook 04 in ``tmp_path`` with its solution cells answered, decode_step's replaced by ``decode_step_source``."""
    source = nbformat.read(str(SOLUTIONS / "04_iterative_decoding.ipynb"), as_version=4)
    notebook = examples.answered(source, source, {"04_decode_step": decode_step_source})
    nbformat.write(notebook, str(tmp_path / "04_iterative_decoding.ipynb"))


def test_the_students_decode_step_is_read_from_notebook_04_beside_this_one(tmp_path, capsys):
    source = nbformat.read(str(SOLUTIONS / "04_iterative_decoding.ipynb"), as_version=4)
    solution = examples.strip_markers(next(c.source for c in source.cells if grade_id(c) == "04_decode_step"))
    release_of_04(tmp_path, "print('chatty')\n" + solution)
    step = earlier_answer("04_iterative_decoding", "decode_step", decoding.decode_step, check_decode_step, tmp_path)
    assert step is not decoding.decode_step and step.__module__ == "earlier_04_iterative_decoding"
    assert capsys.readouterr().out.count("chatty") == 0  # what notebook 04's cells print stays there


@pytest.mark.parametrize("case, words", [
    ("missing", "is not in this folder"),
    ("undefined", "does not define decode_step"),
    ("buggy", "check_decode_step did not pass yet"),
])
def test_without_a_passing_decode_step_from_notebook_04_the_reference_is_used_and_a_line_says_why(case, words, tmp_path, capsys):
    if case == "undefined":
        release_of_04(tmp_path, "raise RuntimeError('half-finished')\n")
    if case == "buggy":
        release_of_04(tmp_path, examples.BY_STUDENT["keep_count_from_current"].edits["04_decode_step"])
    step = earlier_answer("04_iterative_decoding", "decode_step", decoding.decode_step, check_decode_step, tmp_path)
    assert step is decoding.decode_step
    assert words in capsys.readouterr().out


def test_a_function_with_other_parameters_is_named_a_signature_mismatch():
    result = checks.check_guided_logits(answer("06_guided_logits", [("guidance, null_class):", "null_class, guidance):")]))
    assert result.points == 0 and "signature mismatch: expected guided_logits(model, tokens, labels, guidance, null_class)" \
        in result.message, result.message
