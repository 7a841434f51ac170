"""The notebook-05 checks: the package's references pass, each classic mistake fails with words a student understands."""

import json
import re
import warnings
from pathlib import Path

import torch
from torch.nn import functional as F

import autograder.checks.inpainting
from autograder.checks.inpainting import check_paste_known, check_token_mask_from_pixels
from maskgit_lab.inpaint import token_mask_from_pixels


def assert_fails(result, *words):
    assert result.points == 0, f"expected 0 points, got {result}"
    for word in words:
        assert word.lower() in result.message.lower(), f"{word!r} not in: {result.message}"


# --- pixel mask → token mask -----------------------------------------------------------------


def test_loops_over_patches_pass():
    def student(known, downsample):
        B, S, _ = known.shape
        g = S // downsample
        out = torch.zeros(B, g * g, dtype=torch.bool)
        for i in range(g):
            for j in range(g):
                patch = known[:, i * downsample:(i + 1) * downsample, j * downsample:(j + 1) * downsample]
                out[:, i * g + j] = ~patch.flatten(1).all(dim=1)
        return out

    assert check_token_mask_from_pixels(student).passed


def test_reshape_version_passes():
    def student(known, downsample):
        B, S, _ = known.shape
        g = S // downsample
        patches = known.view(B, g, downsample, g, downsample)  # (B, row, y, column, x)
        return (~patches).any(dim=4).any(dim=2).flatten(1)

    assert check_token_mask_from_pixels(student).passed


def test_all_pixels_unknown_instead_of_any():
    def student(known, downsample):
        unknown = (~known).float().unsqueeze(1)
        return (-F.max_pool2d(-unknown, downsample)).flatten(1).bool()  # min-pool: every pixel unknown

    assert_fails(check_token_mask_from_pixels(student), "PARTLY unknown", "ANY")


def test_more_than_half_unknown():
    def student(known, downsample):
        return (F.avg_pool2d((~known).float().unsqueeze(1), downsample) > 0.5).flatten(1)

    assert_fails(check_token_mask_from_pixels(student), "ANY pixel")


def test_known_tokens_marked_true():
    def student(known, downsample):
        return ~token_mask_from_pixels(known, downsample)

    assert_fails(check_token_mask_from_pixels(student), "opposite", "UNKNOWN tokens")


def test_transposed_grid():
    def student(known, downsample):
        return token_mask_from_pixels(known.transpose(1, 2), downsample)

    assert_fails(check_token_mask_from_pixels(student), "transposed", "row by row")


def test_column_major_flatten():
    def student(known, downsample):
        grid = F.max_pool2d((~known).float().unsqueeze(1), downsample)[:, 0]  # (B, h, w)
        return grid.transpose(1, 2).flatten(1).bool()

    assert_fails(check_token_mask_from_pixels(student), "transposed")


def test_hard_coded_downsample():
    def student(known, downsample):
        return token_mask_from_pixels(known, 8)

    assert_fails(check_token_mask_from_pixels(student), "shape (B, (S/f)²)", "f×f")


def test_kernel_of_grid_size():
    def student(known, downsample):
        return token_mask_from_pixels(known, known.shape[-1] // downsample)

    assert_fails(check_token_mask_from_pixels(student), "kernel of S/f", "patch size f")


def test_grid_not_flattened():
    def student(known, downsample):
        return F.max_pool2d((~known).float().unsqueeze(1), downsample)[:, 0].bool()  # (B, h, w)

    assert_fails(check_token_mask_from_pixels(student), "flatten it row by row")


def test_float_token_mask():
    def student(known, downsample):
        return F.max_pool2d((~known).float().unsqueeze(1), downsample).flatten(1)

    assert_fails(check_token_mask_from_pixels(student), "bool")


def test_off_by_one_patch_is_described():
    def student(known, downsample):
        shifted = torch.roll(known, shifts=1, dims=2)  # patches one pixel to the left
        return token_mask_from_pixels(shifted, downsample)

    assert_fails(check_token_mask_from_pixels(student), "expected tokens", "covers pixel rows")


# --- pasting the known pixels back -----------------------------------------------------------


def test_arithmetic_blend_passes():
    def student(generated, original, known):
        k = known[:, None].float()
        return k * original + (1 - k) * generated

    assert check_paste_known(student).passed


def test_float64_answer_passes():
    def student(generated, original, known):
        k = known[:, None].double()
        return k * original.double() + (1 - k) * generated.double()

    assert check_paste_known(student).passed


def test_pasted_the_wrong_way_round():
    def student(generated, original, known):
        return torch.where(known.unsqueeze(1), generated, original)

    assert_fails(check_paste_known(student), "wrong way round", "KNOWN")


def test_generated_returned_unchanged():
    assert_fails(check_paste_known(lambda generated, original, known: generated), "unchanged", "paste the known pixels")


def test_original_returned():
    assert_fails(check_paste_known(lambda generated, original, known: original), "hole")


def test_known_pixels_overwritten_in_some_places():
    def student(generated, original, known):
        out = torch.where(known.unsqueeze(1), original, generated)
        out[:, 0] = generated[:, 0]  # the red channel always generated
        return out

    assert_fails(check_paste_known(student), "known pixels differ")


def test_hole_left_as_original_in_some_places():
    def student(generated, original, known):
        out = torch.where(known.unsqueeze(1), original, generated)
        out[:, 2] = original[:, 2]  # the blue channel never filled
        return out

    assert_fails(check_paste_known(student), "hole are not the generated")


def test_changed_in_place():
    def student(generated, original, known):
        generated[known.unsqueeze(1).expand_as(generated)] = original[known.unsqueeze(1).expand_as(original)]
        return generated

    assert_fails(check_paste_known(student), "in place")


def test_mask_without_channel_axis():
    def student(generated, original, known):
        return torch.where(known.unsqueeze(-1), original, generated)  # (B, S, S, 1): broadcasts wrongly

    result = check_paste_known(student)
    assert result.points == 0


def test_student_warnings_do_not_reach_stderr(capfd):
    def student(known, downsample):
        warnings.warn("a warning from the student's code")
        return token_mask_from_pixels(known, downsample)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_token_mask_from_pixels(student).passed
    assert capfd.readouterr().err == ""


def test_notebook_check_cells_give_the_points_their_checks_award():
    notebook = json.loads((Path(__file__).resolve().parent.parent / "solutions" / "05_inpainting_and_fid.ipynb").read_text())
    graded = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    assert graded
    for cell in graded:
        name = re.search(r"show\((check_\w+)\(", "".join(cell["source"]))[1]
        assert cell["metadata"]["nbgrader"]["points"] == getattr(autograder.checks.inpainting, name).points, name
