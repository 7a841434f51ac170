"""Example submissions, generated from the student release: one correct, one per misconception, one per trap.

``python -m autograder examples`` writes ``autograder/examples/<student>/<notebook>.ipynb``.
Every example starts from the released notebook with the reference answers filled in (the
solutions' code without its markers), then applies its edits from ``EXAMPLES``: a solution
cell replaced by a buggy one, a test cell edited or deleted, a trap. An example hands in only
the notebooks it concerns, so grading it is quick; the others get a ``missing`` row.

``EXPECTED`` says what grading each example must give (tests/test_autograder_*.py check it):
the status of the notebook, and the test cells that lose their points with a piece of the
message, or a piece of the reason; for a misconception, the name ``misconceptions.md`` lists it under.
"""

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import release
from autograder.cells import grade_id, is_solution_cell
from autograder.core import Status
from autograder.grader import misconceptions

EXAMPLES = Path(__file__).resolve().parent / "examples"
REFERENCE = "reference"
NB01, NB02, NB03, NB04 = "01_vq_tokenization", "02_multi_head_attention", "03_mvtm_training", "04_iterative_decoding"
NB06 = "06_generation_and_guidance"
DELETE = None
DUPLICATE = "duplicate"  # an edit that repeats the cell (same grade id) right after itself

NEAREST = '''def nearest_code(z, codebook):
    """Index of the nearest codebook row for every row of z."""
    distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)  # (M, K)
    return distances.argmin(dim=1)
'''
NEAREST_BY_DOT = '''def nearest_code(z, codebook):
    """Index of the nearest codebook row for every row of z."""
    return (z @ codebook.t()).argmax(dim=1)  # forgets the ||e_k||² term
'''


# Cheats run only where the checks are re-run outside the notebook: a process started as `python -m autograder.judge.worker`
# (or the old `-m autograder.worker`, `-m autograder.rerun`). Not "a module named *.worker is loaded": `import torch` loads torch's
# DataLoader worker module, in the kernel too.
IN_RERUN = "getattr(getattr(sys.modules['__main__'], '__spec__', None), 'name', '').endswith(('.rerun', '.worker'))"
FORGE_AND_EXIT = f'''
import gc
import io
import json
import os
import sys

if {IN_RERUN}:  # write full marks into every file open for writing (the old re-run's report), then leave
    full = {{"tests": {{}}, "hidden": [{{"answer": "nearest_code", "points": 1.0, "max_points": 1.0}}], "errors": {{}}}}
    for handle in [o for o in gc.get_objects() if isinstance(o, (io.TextIOWrapper, io.BufferedWriter))]:
        try:
            handle.write(json.dumps(full) if isinstance(handle, io.TextIOWrapper) else json.dumps({{"result": 2}}).encode())
            handle.flush()
        except Exception:
            pass
    os._exit(0)
'''
EXIT_IN_RERUN = f"""import os
import sys

if {IN_RERUN}:
    os._exit(0)
"""


@dataclass(frozen=True)
class Example:
    student: str
    notebook: str
    edits: dict  # grade id → new source (DELETE removes the cell)
    status: Status = Status.GRADED
    lost: dict = field(default_factory=dict)  # test grade id → piece of its message
    reason: str = ""  # a piece of the row's reason
    full: bool = False  # must keep full marks, hidden checks included (an honest submission with noise)
    misconception: str = ""  # the Variant (autograder/checks/variants.py) misconceptions.md must list this student under


EXAMPLES_TABLE = [
    # --- one misconception each (the check's message names it) -------------------------------
    Example("straight_through_missing", NB01, {"01_straight_through": '''def straight_through(z_e, z_q):
    return z_q  # the gradient stops at the codebook
'''}, lost={"01_check_straight_through": "no gradient reaches z_e"}, misconception="gradient stops at the codebook"),
    Example("softmax_wrong_axis", NB02, {"02_sdpa": '''def scaled_dot_product_attention(q, k, v):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.softmax(dim=-2)  # over the queries
    return weights @ v, weights
'''}, lost={"02_check_sdpa": "wrong axis", "02_check_mha": "expected"}, misconception="softmax over the queries"),
    Example("no_sqrt_scaling", NB02, {"02_sdpa": '''def scaled_dot_product_attention(q, k, v):
    weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)  # not divided by sqrt(d)
    return weights @ v, weights
'''}, lost={"02_check_sdpa": "not scaled", "02_check_mha": "expected"}, misconception="not scaled"),
    Example("gamma_increasing", NB03, {"03_gamma": '''def gamma(name):
    laws = {"cosine": lambda r: 1 - torch.cos(r * math.pi / 2), "linear": lambda r: r, "square": lambda r: r**2,
            "cubic": lambda r: r**3, "sqrt": lambda r: torch.sqrt(r), "arccos": lambda r: 1 - torch.arccos(r) / (math.pi / 2)}
    if name not in laws:
        raise ValueError(f"unknown mask schedule {name!r}")
    return laws[name]  # the fraction unmasked, not masked: increasing
'''}, lost={"03_check_gamma_endpoints": "γ(0) = 1", "03_check_gamma_laws": ""},
            misconception="schedule rises from 0 to 1"),
    Example("loss_all_tokens", NB03, {"03_masked_token_loss": '''def masked_token_loss(logits, targets, mask, label_smoothing=0.1):
    B, N, K = logits.shape
    return F.cross_entropy(logits.reshape(B * N, K), targets.reshape(B * N), label_smoothing=label_smoothing)
'''}, lost={"03_check_masked_token_loss": "ALL tokens"}, misconception="all tokens"),
    Example("scalar_gumbel", NB04, {"04_gumbel_noise": '''def gumbel_noise(shape, generator=None):
    u = torch.rand((), generator=generator).clamp(1e-20, 1 - 1e-7)  # one sample for every token
    return -torch.log(-torch.log(u)) * torch.ones(shape)
'''}, lost={"04_check_gumbel_noise": "same value"}, misconception="one Gumbel sample for all tokens"),
    Example("keep_count_from_current", NB04, {"04_decode_step": '''def decode_step(logits, current, mask, n0, t, steps, schedule,
                temperature, mask_id, generator=None):
    B, N, K = logits.shape
    log_probs = logits.float().log_softmax(dim=-1)
    sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)
    confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
    confidence = confidence + annealed_temperature(temperature, t, steps) * gumbel_noise((B, N), generator)
    confidence = confidence.masked_fill(~mask, float("inf"))
    filled = torch.where(mask, sampled, current)
    n = masked_after_step(schedule, t, steps, mask.sum(dim=1))  # from the tokens masked NOW, not n0
    ranks = confidence.argsort(dim=1).argsort(dim=1)
    new_mask = ranks < n.unsqueeze(1)
    return filled.masked_fill(new_mask, mask_id), new_mask
'''}, lost={"04_check_decode_step_counts": "not the ones still"}, misconception="counts from the current mask"),
    Example("labels_dropped_to_class_0", NB06, {"06_drop_labels": '''def drop_labels(labels, p_uncond, null_class, generator=None):
    dropped = torch.rand(labels.shape, generator=generator) < p_uncond
    return labels.masked_fill(dropped, 0)  # "no label" as class 0
'''}, lost={"06_check_drop_labels": "must become the null class"}, misconception="dropped to a real class"),
    Example("guidance_halves_swapped", NB06, {"06_guided_logits": '''def guided_logits(model, tokens, labels, guidance, null_class):
    null = torch.full_like(labels, null_class)
    both = model(torch.cat([tokens, tokens]), torch.cat([labels, null]))
    uncond, cond = both.chunk(2)  # the labelled rows come first
    return uncond + guidance * (cond - uncond)
'''}, lost={"06_check_guided_logits": "halves are swapped"}, misconception="guidance halves swapped"),
    Example("guidance_two_passes", NB06, {"06_guided_logits": '''def guided_logits(model, tokens, labels, guidance, null_class):
    cond = model(tokens, labels)
    uncond = model(tokens, torch.full_like(labels, null_class))  # a second pass
    return uncond + guidance * (cond - uncond)
'''}, lost={"06_check_guidance_one_pass": "ran the model twice"}, misconception="two forward passes"),
    Example("logits_of_the_empty_canvas", NB06, {"06_generate_codes": '''def generate_codes(logits, labels, num_tokens, mask_id, steps,
                   schedule, temperature, step, generator=None):
    B = labels.shape[0]
    current = torch.full((B, num_tokens), mask_id)
    mask = torch.ones(B, num_tokens, dtype=torch.bool)
    n0 = mask.sum(dim=1)
    scores = logits(current, labels, 0)  # once, before the loop
    for t in range(steps):
        current, mask = step(scores, current, mask, n0, t, steps, schedule, temperature, mask_id, generator)
    return current
'''}, lost={"06_check_generate_codes": "logits of the empty canvas"}, misconception="logits of the empty canvas only"),
    # --- traps ---------------------------------------------------------------------------------
    Example("raises", NB01, {"01_nearest_code": "raise RuntimeError('half-finished cell')\n" + NEAREST},
            lost={"01_check_nearest_code": "not defined"}, reason="raised RuntimeError"),
    Example("hangs", NB01, {"01_nearest_code": "while True:  # an endless loop\n    pass\n" + NEAREST},
            lost={"01_check_nearest_code": ""}, reason="timed out"),
    Example("hangs_hard", NB01, {"01_nearest_code": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                 "while True:  # deaf to interrupts\n    pass\n" + NEAREST},
            status=Status.TIMEOUT, reason="interrupt"),
    Example("memory_hog", NB01, {"01_nearest_code": "cache = torch.ones(2**31)  # 8 GB\n" + NEAREST},
            lost={"01_check_nearest_code": ""}, reason="out of memory"),
    Example("stderr", NB01, {"01_nearest_code": NEAREST.replace("    distances", "    print('debug', file=sys.stderr)\n    distances",
                                                                  1).replace("def", "import sys\n\n\ndef", 1)},
            full=True, reason="wrote to stderr 'debug' (no points lost)"),
    Example("deleted_test_cell", NB01, {"01_check_nearest_code": DELETE, "01_nearest_code": NEAREST_BY_DOT},
            lost={"01_check_nearest_code": "dot product"}, reason="were deleted", misconception="dot product"),
    Example("edited_test_cell", NB01, {"01_check_nearest_code": "print('[PASSED] check_nearest_code (2/2)')",
                                       "01_nearest_code": NEAREST_BY_DOT},
            lost={"01_check_nearest_code": "dot product"}, reason="were edited", misconception="dot product"),
    Example("writes_outside", NB01, {"01_nearest_code": '''import os
import pwd
from pathlib import Path

for target in (Path(pwd.getpwuid(os.getuid()).pw_dir) / ".maskgit-grader-tamper-test", Path.cwd().parents[4] / "other-student.txt"):
    try:
        target.write_text("was here")
    except OSError:
        pass
''' + NEAREST}, status=Status.TAMPERED, reason="outside its scratch folder"),
    Example("imports_reference", NB01, {"01_nearest_code": '''def nearest_code(z, codebook):
    from maskgit_lab.vq import nearest_code as reference
    return reference(z, codebook)
'''}, status=Status.PENALIZED, lost={"01_check_nearest_code": "reference implementation"}, reason="uses the reference"),
    Example("hides_traceback", NB01, {"01_nearest_code": "get_ipython().showtraceback = lambda *args, **kwargs: None\n"
                                      + NEAREST_BY_DOT}, status=Status.TAMPERED, reason="tampers with the grader"),
    # --- what a determined student tried (issue 21): the verdict is out of their reach -------------
    Example("forges_report", NB01, {"01_nearest_code": NEAREST_BY_DOT + FORGE_AND_EXIT},
            lost={"01_check_nearest_code": "not defined"}, reason="exited or stopped answering"),
    Example("exits_in_rerun", NB01, {"01_nearest_code": NEAREST_BY_DOT + "print(2)  # partial credit?\n" + EXIT_IN_RERUN},
            lost={"01_check_nearest_code": "not defined"}, reason="exited or stopped answering"),
    Example("reference_by_sys_modules", NB01, {"01_nearest_code": '''import sys


def nearest_code(z, codebook):
    return sys.modules["maskgit" + "_lab.vq"].nearest_code(z, codebook)
'''}, status=Status.PENALIZED, lost={"01_check_nearest_code": "reference implementation"},
            reason="at run time: sys.modules['maskgit_lab.vq'].nearest_code"),
    Example("writes_by_ctypes", NB01, {"01_nearest_code": '''import os
import pwd

try:
    libc = __import__("ct" + "ypes").CDLL(None)
    target = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".maskgit-grader-ctypes-test").encode()
    libc.close(libc.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
except Exception:
    pass
''' + NEAREST}, status=Status.TAMPERED, reason="call the C function open() through ctypes"),
    Example("overwrites_gradebook", NB01, {"01_nearest_code": '''import os
from pathlib import Path

for db in Path(os.environ["HOME"]).parent.rglob("gradebook.db"):  # everything the student may write
    db.write_bytes(b"not a database any more")
''' + NEAREST}, full=True),
    Example("duplicated_test_cell", NB01, {"01_check_nearest_code": DUPLICATE}, full=True,
            reason="test cell 01_check_nearest_code was duplicated; the grader used the released one"),
    Example("warns", NB01, {"01_nearest_code": NEAREST.replace("    distances", "    warnings.warn('float64 is slow')\n    distances",
                                                                 1).replace("def", "import warnings\n\n\ndef", 1)},
            full=True, reason="warned UserWarning: float64 is slow"),
    Example("warns_in_decoding", NB04, {"04_gumbel_noise": '''def gumbel_noise(shape, generator=None):
    warnings.warn("drawing noise")
    u = torch.rand(shape, generator=generator).clamp(1e-20, 1 - 1e-7)
    return -torch.log(-torch.log(u))
'''.replace("def", "import warnings\n\n\ndef", 1)}, full=True, reason="warned UserWarning: drawing noise"),
    Example("fakes_show", NB01, {"01_nearest_code": "def show(result):\n    print('[PASSED]', result.check)\n\n\n" + NEAREST_BY_DOT},
            status=Status.TAMPERED, reason="tampers with the grader"),
]
BY_STUDENT = {e.student: e for e in EXAMPLES_TABLE}


def strip_markers(source: str) -> str:
    """The solution's code as a student would write it: without nbgrader's region markers."""
    return "\n".join(line for line in source.splitlines()
                     if not re.match(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line)).rstrip() + "\n"


def released(source: Path = release.SOLUTIONS, release_dir: Path = None) -> dict:
    """name → released notebook: from ``release_dir`` (e.g. a graded course's ``release/maskgit/``),
    notebooks/ when it matches ``source``, else a fresh nbgrader release."""
    names = sorted(p.name for p in source.glob("*.ipynb"))
    if release_dir is None and source.resolve() == release.SOLUTIONS.resolve():
        release_dir = release.RELEASE
    if release_dir is not None and all((Path(release_dir) / n).exists() for n in names):
        return {Path(n).stem: nbformat.read(str(Path(release_dir) / n), as_version=4) for n in names}
    with tempfile.TemporaryDirectory(prefix="maskgit-examples-") as tmp:
        paths = release.generate(Path(tmp), source)
        return {p.stem: nbformat.read(str(p), as_version=4) for p in paths}


def answered(release_nb, source_nb, edits: dict):
    """The release with the reference answers filled in, then ``edits`` applied."""
    solutions = {grade_id(c): strip_markers(c.source) for c in source_nb.cells if is_solution_cell(c)}
    cells = []
    for cell in release_nb.cells:
        gid = grade_id(cell)
        if gid in edits:
            if edits[gid] is DELETE:
                continue
            if edits[gid] == DUPLICATE:  # a copy as Jupyter pastes it: a new cell id, the same nbgrader metadata
                cells.append(nbformat.from_dict(dict(cell, id=f"{cell.get('id', 'cell')}-copy")))
            else:
                cell = nbformat.from_dict(dict(cell, source=edits[gid]))
        elif gid in solutions:
            cell = nbformat.from_dict(dict(cell, source=solutions[gid]))
        cells.append(cell)
    notebook = nbformat.from_dict(dict(release_nb, cells=cells))
    return notebook


def write(dest: Path = EXAMPLES, source: Path = release.SOLUTIONS, students=None, release_dir: Path = None) -> list:
    """Write the examples (all, or only ``students``) into ``dest``; returns the paths written."""
    dest, source = Path(dest), Path(source)
    releases = released(source, release_dir)
    sources = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(source.glob("*.ipynb"))}
    plan = {REFERENCE: {name: {} for name in sources}}
    for example in EXAMPLES_TABLE:
        if example.notebook in sources:
            plan.setdefault(example.student, {})[example.notebook] = example.edits
    written = []
    for student, notebooks in sorted(plan.items()):
        if students is not None and student not in students:
            continue
        folder = dest / student
        folder.mkdir(parents=True, exist_ok=True)
        for name, edits in sorted(notebooks.items()):
            path = folder / f"{name}.ipynb"
            nbformat.write(answered(releases[name], sources[name], edits), str(path))
            written.append(path)
    return written


def verify_misconceptions(page: Path) -> list:
    """What in the examples' ``misconceptions.md`` (autograder/grader/misconceptions.py) differs from
    ``EXAMPLES_TABLE``: every example with a ``misconception`` must be listed under that name in its notebook."""
    if not Path(page).is_file():
        return [f"{page}: not written"]
    listed = misconceptions.read(page)
    return [f"{e.student}: {Path(page).name} does not list it under {e.misconception!r} in {e.notebook}"
            for e in EXAMPLES_TABLE if e.misconception and e.student not in listed.get((e.notebook, e.misconception), [])]


def verify(rows: list, notebooks: list) -> list:
    """What in graded ``rows`` (CSV dicts) differs from ``EXPECTED``; empty when all is as it should be."""
    by = {(r["student"], r["notebook"]): r for r in rows}
    problems = []
    for notebook in notebooks:
        row = by.get((REFERENCE, notebook))
        if (row is None or row["status"] != Status.GRADED or row["score"] != row["max_score"]
                or row["hidden_score"] != row["hidden_max"]):
            problems.append(f"{REFERENCE}/{notebook}: expected full marks, got {row}")
    for example in EXAMPLES_TABLE:
        row = by.get((example.student, example.notebook))
        if row is None:
            problems.append(f"{example.student}/{example.notebook}: no row")
            continue
        if row["status"] != example.status:
            problems.append(f"{example.student}: status {row['status']}, expected {example.status} ({row['reason']})")
        if example.reason not in row["reason"]:
            problems.append(f"{example.student}: reason lacks {example.reason!r}: {row['reason']}")
        for gid, fragment in example.lost.items():
            if example.status == Status.GRADED and (gid not in row["reason"] or fragment not in row["reason"]):
                problems.append(f"{example.student}: reason lacks {gid} / {fragment!r}: {row['reason']}")
        if example.status == Status.GRADED and example.lost:
            full = float(row["max_score"])
            if not float(row["score"]) < full:
                problems.append(f"{example.student}: lost no points")
        if example.full and (row["score"] != row["max_score"] or row["hidden_score"] != row["hidden_max"]):
            problems.append(f"{example.student}: expected full marks, got {row['score']}/{row['max_score']} "
                            f"and {row['hidden_score']}/{row['hidden_max']} ({row['reason']})")
        others = [r for (s, n), r in by.items() if s == example.student and n != example.notebook]
        if any(r["status"] != Status.MISSING for r in others):
            problems.append(f"{example.student}: other notebooks should be missing")
    return problems
