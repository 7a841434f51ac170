"""Generation from an empty canvas: every token decoded, the label used, the test set's class shares."""

import math

import pytest
import torch

from maskgit_lab.classes import NUM_CLASSES, labels_of_test_set
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.decoding import GENERATION, DecodeSettings, guided_logits
from maskgit_lab.generate import empty_canvas, generate, generate_batched, generate_codes, labels_like_test
from maskgit_lab.schedules import gamma


def test_the_canvas_starts_all_masked():
    tokens, mask = empty_canvas(3, 64)
    assert tokens.shape == mask.shape == (3, 64) and mask.all()


def test_generate_decodes_every_token_and_draws_the_tokenizer_s_images(tiny_tokenizer, tiny_conditional):
    labels = torch.tensor([0, 1, 2])
    images, history = generate(tiny_tokenizer, tiny_conditional, labels, DecodeSettings(steps=4, guidance=2.0),
                               torch.Generator().manual_seed(0), return_history=True)
    codes = history.tokens[-1]
    assert images.shape == (3, 3, 64, 64) and not history.masks[-1].any()
    assert (codes < tiny_conditional.mask_id).all()
    torch.testing.assert_close(images, tiny_tokenizer.decode(codes))
    first = math.floor(math.cos(math.pi / 2 * 1 / 4) * 64)  # cosine γ(1/T)·n₀ with n₀ = N = 64
    assert history.num_masked[0].tolist() == [first] * 3 == [59] * 3


def test_batched_generation_is_one_seeded_stream(tiny_tokenizer, tiny_conditional):
    labels = torch.tensor([0, 1, 2, 0, 1])
    settings = DecodeSettings(steps=3)
    whole = generate_batched(tiny_tokenizer, tiny_conditional, labels, settings, batch_size=5, seed=4, progress=False)
    again = generate_batched(tiny_tokenizer, tiny_conditional, labels, settings, batch_size=5, seed=4, progress=False)
    other = generate_batched(tiny_tokenizer, tiny_conditional, labels, settings, batch_size=5, seed=5, progress=False)
    assert torch.equal(whole, again) and not torch.equal(whole, other)


def test_an_unconditional_model_is_refused_naming_the_conditional_one(tiny_tokenizer, tiny_model):
    with pytest.raises(ValueError, match=r"needs a conditional one \(train-mvtm --conditional true\), e.g. the shipped .*mvtm-cond.pt"):
        generate(tiny_tokenizer, tiny_model, torch.tensor([0]))


def test_labels_follow_the_test_set_s_class_shares():
    test = labels_of_test_set(DEFAULT_ROOT, 545)
    assert torch.equal(labels_like_test(test, 545), test.sort().values)
    few = labels_like_test(test, 64)
    assert few.shape == (64,) and torch.equal(few, few.sort().values)
    shares = torch.bincount(test, minlength=NUM_CLASSES).double() / 545 * 64
    assert ((torch.bincount(few, minlength=NUM_CLASSES) - shares).abs() < 1).all()  # each within rounding


def test_the_generation_default_guides_and_has_nothing_to_paste_back():
    assert isinstance(GENERATION, DecodeSettings) and GENERATION.guidance > 1
    assert GENERATION.retokenize == 0 and GENERATION.blur == 0  # inpainting's round trips need known pixels


def test_generate_codes_is_generate_s_loop_with_plain_arguments(tiny_tokenizer, tiny_conditional):
    """Notebook 06's twin: the logits of step t as a function, γ and τ as given; the same codes as generate() with
    one seed, the sampling temperature falling from 2 to 0.5 over the steps."""
    labels = torch.tensor([2, 0, 1])
    settings = DecodeSettings(steps=4, guidance=2.0, sample_temperature=0.5, first_sample_temperature=2.0)
    step_s = {0: 2.0, 1: 1.5, 2: 1.0, 3: 0.5}

    def logits(tokens, labels, t):
        return guided_logits(tiny_conditional, tokens, labels, settings.guidance, tiny_conditional.null_class) / step_s[t]

    with torch.no_grad():
        codes = generate_codes(logits, labels, tiny_conditional.cfg.num_tokens, tiny_conditional.mask_id, settings.steps,
                               gamma(settings.schedule), settings.temperature, generator=torch.Generator().manual_seed(3))
    _, history = generate(tiny_tokenizer, tiny_conditional, labels, settings, torch.Generator().manual_seed(3),
                          return_history=True)
    assert torch.equal(codes, history.tokens[-1])
