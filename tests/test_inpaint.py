import pytest
import torch

from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.inpaint import gaussian_blur, inpaint, paste_known, token_mask_from_pixels


def brute_force_token_mask(known: torch.Tensor, f: int) -> torch.Tensor:
    B, S, _ = known.shape
    g = S // f
    out = torch.zeros(B, g * g, dtype=torch.bool)
    for b in range(B):
        for i in range(g):
            for j in range(g):
                out[b, i * g + j] = not bool(known[b, i * f : (i + 1) * f, j * f : (j + 1) * f].all())
    return out


@pytest.mark.parametrize("f", [4, 8])
def test_token_mask_matches_brute_force(f):
    generator = torch.Generator().manual_seed(0)
    known = torch.rand(3, 64, 64, generator=generator) > 0.02  # scattered unknown pixels
    known[1] = True
    known[2, 10:30, 5:60] = False
    assert torch.equal(token_mask_from_pixels(known, f), brute_force_token_mask(known, f))


def test_one_unknown_pixel_makes_its_token_unknown():
    known = torch.ones(1, 64, 64, dtype=torch.bool)
    known[0, 17, 42] = False  # row 17 → token row 2, column 42 → token column 5
    mask = token_mask_from_pixels(known, 8)
    assert mask.sum() == 1 and mask[0, 2 * 8 + 5]


def test_pixel_mask_must_be_bool_batch():
    with pytest.raises(ValueError, match="pixel mask must be bool"):
        token_mask_from_pixels(torch.ones(64, 64, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="pixel mask must be bool"):
        token_mask_from_pixels(torch.ones(1, 64, 64), 8)


def test_paste_known_keeps_known_pixels():
    original, generated = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    known = torch.zeros(2, 4, 4, dtype=torch.bool)
    known[:, :2] = True
    out = paste_known(generated, original, known)
    assert (out[:, :, :2] == 0).all() and (out[:, :, 2:] == 1).all()


def test_inpaint_keeps_known_pixels_exactly(tiny_tokenizer, tiny_model):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    known = torch.ones(2, 64, 64, dtype=torch.bool)
    known[:, 16:40, 8:50] = False
    out, history = inpaint(tiny_tokenizer, tiny_model, images, known, DecodeSettings(steps=4), return_history=True,
                           generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert torch.equal(out.permute(1, 0, 2, 3)[:, known], images.permute(1, 0, 2, 3)[:, known])
    assert not torch.equal(out[:, :, 20, 20], images[:, :, 20, 20])
    assert len(history.masks) == 4
    unpasted = inpaint(tiny_tokenizer, tiny_model, images, known, DecodeSettings(steps=4), paste=False)
    assert not torch.equal(unpasted.permute(1, 0, 2, 3)[:, known], images.permute(1, 0, 2, 3)[:, known])


@pytest.mark.parametrize("rounds", [1, 2])
def test_retokenizing_encodes_and_decodes_the_pasted_image_again(tiny_tokenizer, tiny_model, rounds):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    known = torch.ones(2, 64, 64, dtype=torch.bool)
    known[:, 20:45, 3:37] = False  # a hole whose edges cut through tokens
    first, history = inpaint(tiny_tokenizer, tiny_model, images, known, DecodeSettings(steps=4, retokenize=0, blur=0),
                             paste=False, generator=torch.Generator().manual_seed(0), return_history=True)
    expected = first
    with torch.no_grad():
        for _ in range(rounds):
            expected = tiny_tokenizer.decode(tiny_tokenizer.encode(paste_known(expected, images, known)))
    settings = DecodeSettings(steps=4, retokenize=rounds, blur=0)
    out, again = inpaint(tiny_tokenizer, tiny_model, images, known, settings, generator=torch.Generator().manual_seed(0),
                         return_history=True)
    torch.testing.assert_close(out, paste_known(expected, images, known))
    assert torch.equal(again.tokens[-1], history.tokens[-1])  # the history is the transformer's, before the round trips
    assert not torch.allclose(expected, first)


def dense_gaussian(images, sigma):
    """A 5 × 5 Gaussian of σ pixels as one dense 2-D convolution per channel, borders mirrored."""
    t = torch.arange(-2.0, 3.0)
    weights = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    weights = (weights / weights.sum()).expand(3, 1, 5, 5)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect"), weights, groups=3)


@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_the_blur_is_torchvisions_gaussian_blur(sigma):
    from torchvision.transforms.functional import gaussian_blur as torchvisions

    images = torch.rand(3, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(gaussian_blur(images, sigma), torchvisions(images, kernel_size=[5, 5], sigma=[sigma, sigma]))


@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_blur_softens_the_generated_pixels_after_the_round_trips_and_never_the_known_ones(tiny_tokenizer, tiny_model, sigma):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    known = torch.ones(2, 64, 64, dtype=torch.bool)
    known[:, 20:45, 3:37] = False
    sharp = inpaint(tiny_tokenizer, tiny_model, images, known, DecodeSettings(steps=4, retokenize=1, blur=0),
                    paste=False, generator=torch.Generator().manual_seed(0))
    out = inpaint(tiny_tokenizer, tiny_model, images, known, DecodeSettings(steps=4, retokenize=1, blur=sigma),
                  generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, paste_known(dense_gaussian(sharp, sigma), images, known))
    assert torch.equal(out.permute(1, 0, 2, 3)[:, known], images.permute(1, 0, 2, 3)[:, known])
    assert not torch.allclose(out, paste_known(sharp, images, known))


def test_inpaint_refuses_a_mask_that_does_not_match(tiny_tokenizer, tiny_model):
    images = torch.zeros(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"mask \(1, 64, 64\) does not match images \(2, 3, 64, 64\)"):
        inpaint(tiny_tokenizer, tiny_model, images, torch.ones(1, 64, 64, dtype=torch.bool))
