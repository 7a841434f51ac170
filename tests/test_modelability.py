"""Tokenizer diagnostics: entropies against hand counts, and the context shift of each encoder."""

import dataclasses
import json
import math

import pytest
import torch

from maskgit_lab.modelability import (
    CANDIDATES,
    candidate_table,
    code_stats,
    context_shift,
    diagnose_tokenizer,
    entropy_bits,
    flat_code_stats,
    flat_patches,
    patches,
)
from maskgit_lab.vq import VQTokenizer, encode_all
from tests.conftest import TINY_VQ


def test_entropy_of_hand_counted_histograms():
    assert entropy_bits(torch.tensor([5, 0, 0])) == 0.0
    assert entropy_bits(torch.tensor([2, 2, 2, 2])) == pytest.approx(2.0)
    assert entropy_bits(torch.tensor([3, 1])) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_code_stats_counts_codes_and_perplexity():
    stats = code_stats(torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3]]), num_codes=10)
    assert stats["codes_used"] == 4
    assert stats["perplexity"] == pytest.approx(4.0)


def test_patches_follow_the_token_grid_order():
    images = -torch.ones(1, 3, 16, 16)
    images[0, :, 0:8, 8:16] = 1.0  # token 1 (row 0, column 1) is white
    p = patches(images, 8)  # (1, 4, 3, 64)
    assert p.shape == (1, 4, 3, 64)
    assert p[0, 1].eq(1).all() and p[0, [0, 2, 3]].eq(0).all()


def two_colour_images():
    """Two 16×16 images of four 8×8 patches: white, white, red, and one patch with an edge."""
    images = torch.ones(2, 3, 16, 16)
    images[:, :, 8:16, 0:8] = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)  # red
    images[:, :, 8:16, 12:16] = -1.0  # half black: not flat
    return images


def test_flat_patches_and_white_codes_from_hand_counts():
    images = two_colour_images()
    flat, colour = flat_patches(images, 8)
    assert flat.tolist() == [[True, True, True, False]] * 2
    assert colour[0, 0] == colour[0, 1] != colour[0, 2]
    # white tokens 0, 1 of both images get codes 5, 5 and 5, 6: two codes, entropy of (3, 1)
    codes = torch.tensor([[5, 5, 7, 9], [5, 6, 7, 9]])
    stats = flat_code_stats(codes, images, num_codes=10, f=8)
    assert stats["white_share"] == pytest.approx(0.5) and stats["white_codes"] == 2
    assert stats["white_entropy_bits"] == pytest.approx(entropy_bits(torch.tensor([3, 1])))
    assert stats["white_top_share"] == pytest.approx(0.75)
    # H(code | colour): white (4 of 6 flat patches) has the (3, 1) entropy, red (2 of 6) one code
    assert stats["flat_conditional_bits"] == pytest.approx(4 / 6 * entropy_bits(torch.tensor([3, 1])))


def test_a_patch_encoder_has_no_context_shift_and_a_conv_encoder_has_some():
    torch.manual_seed(0)
    gt = torch.rand(4, 3, 64, 64) * 2 - 1
    known = torch.ones(4, 64, 64, dtype=torch.bool)
    known[:, 20:44, 20:44] = False  # a centre hole
    masked = torch.where(known.unsqueeze(1), gt, torch.zeros_like(gt))
    patch = VQTokenizer(dataclasses.replace(TINY_VQ, encoder="patch", num_codes=64)).eval()
    conv = VQTokenizer(dataclasses.replace(TINY_VQ, num_codes=64)).eval()
    assert context_shift(patch, masked, known, encode_all(patch, gt)) == 0.0
    assert context_shift(conv, masked, known, encode_all(conv, gt)) > 0.0


def test_the_candidate_table_formats_each_field_and_marks_missing_ones(tmp_path):
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps([{"tokenizer": "a", "floor_fid": 61.03, "white_entropy_bits": 0.031, "context_shift": 0.0},
                                {"tokenizer": "b", "probe_acc_50": 0.4159, "gap_closed": 0.5}]))
    header, rule, a, b = candidate_table(path).split("\n")
    assert header.count("|") == rule.count("|") == 8
    assert a == "| a | 61.0 | 0.03 bits | – | 0.0% | – | – |"
    assert b == "| b | – | – | – | – | 0.416 | 0.50 |"


def test_the_shipped_candidate_row_is_what_the_diagnostics_measure_on_the_shipped_tokenizer():
    from maskgit_lab.checkpoint import SHIPPED_VQ, load_model
    from maskgit_lab.data import load_test_batch

    (row,) = [row for row in json.loads(CANDIDATES.read_text()) if row.get("shipped")]
    measured = diagnose_tokenizer(load_model(SHIPPED_VQ, "vq"), load_test_batch(needs_gt="to diagnose the tokenizer"))
    assert row["white_entropy_bits"] == pytest.approx(measured["white_entropy_bits"], abs=0.005)
    assert row["flat_conditional_bits"] == pytest.approx(measured["flat_conditional_bits"], abs=0.005)
    assert row["context_shift"] == pytest.approx(measured["context_shift"], abs=0.0005)
