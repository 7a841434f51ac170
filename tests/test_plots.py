import torch

from maskgit_lab import plots
from maskgit_lab.checkpoint import SHIPPED_VQ, load_model
from maskgit_lab.decoding import DecodeSettings, iterative_decode
from maskgit_lab.plots import decoding_grid, gamma_figure, render_tokens, training_curves


def test_masked_tokens_are_drawn_as_flat_gray_patches(tiny_tokenizer):
    tokens = torch.randint(16, (2, 64), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, 9] = True  # token row 1, column 1 → pixels 8..15
    mask[1, 63] = True  # the last token → pixels 56..63 of the last row and column
    image = render_tokens(tiny_tokenizer, tokens.masked_fill(mask, 16), mask)  # a mask id under the mask
    assert (image[0, :, 8:16, 8:16] == 0).all() and (image[1, :, 56:, 56:] == 0).all()
    assert not (image[0, :, :8, :8] == 0).all()
    pixels = torch.nn.functional.interpolate(mask.view(2, 1, 8, 8).float(), scale_factor=8).bool().expand(-1, 3, -1, -1)
    assert image[pixels].eq(0).all() and not image[~pixels].eq(0).all()
    plain = render_tokens(tiny_tokenizer, tokens, torch.zeros_like(mask))
    torch.testing.assert_close(plain, tiny_tokenizer.decode(tokens), rtol=0, atol=0)  # nothing masked: the decoding


def test_decided_tokens_keep_their_colour_beside_masked_ones():
    # The shipped tokenizer's code 0 decodes magenta: decided white tokens amid masked ones must stay
    # white or gray, not take a pink fringe from whatever code stands under the mask.
    tokenizer = load_model(SHIPPED_VQ, "vq")
    white = tokenizer.encode(torch.ones(1, 3, 64, 64))  # (1, 256)
    mask = torch.rand(1, 256, generator=torch.Generator().manual_seed(0)) < 0.7
    image = render_tokens(tokenizer, white, mask)[0]  # (3, S, S)
    decided = ~torch.nn.functional.interpolate(mask.view(1, 1, 16, 16).float(), scale_factor=4).bool()[0, 0]
    shown = image[:, decided]  # (3, P)
    spread = shown.max(0).values - shown.min(0).values  # 0 for a neutral white or gray pixel
    assert spread.max() < 0.35, f"a decided white token is drawn tinted (RGB spread {spread.max():.2f})"


def test_figures_are_written(tmp_path, tiny_tokenizer, tiny_model):
    tokens = torch.randint(16, (2, 64))
    mask = torch.rand(2, 64) < 0.5
    _, history = iterative_decode(tiny_model, tokens, mask, DecodeSettings(steps=3), return_history=True)
    images = torch.zeros(2, 3, 64, 64)
    assert decoding_grid(tiny_tokenizer, images, history, images, images, tmp_path / "g.png").stat().st_size > 1000
    assert gamma_figure(tmp_path / "s.png").stat().st_size > 1000
    (tmp_path / "log.csv").write_text("step,loss,acc\n10,2.0,0.1\n20,1.5,0.2\n")
    assert training_curves(tmp_path / "log.csv", tmp_path / "c.png", ["loss", "acc"]).stat().st_size > 1000


def test_a_guide_line_is_drawn_in_its_own_panel_only(tmp_path, monkeypatch):
    (tmp_path / "log.csv").write_text("step,loss,acc\n1,2.0,0.1\n2,1.5,0.2\n")
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
    plots.training_curves(tmp_path / "log.csv", tmp_path / "c.png", ["loss", "acc"], guides={"loss": (3.0, "uniform guess")})
    loss_ax, acc_ax = figures[0].axes
    assert loss_ax.get_legend_handles_labels()[1] == ["uniform guess"]
    assert list(loss_ax.get_lines()[-1].get_ydata()) == [3.0, 3.0]
    assert len(acc_ax.get_lines()) == 1 and acc_ax.get_legend() is None


def test_decoding_frames_draw_every_step_as_render_tokens_does_and_gray_out_a_left_over_mask_id(tiny_tokenizer, tiny_model):
    tokens = torch.randint(16, (2, 64))
    mask = torch.rand(2, 64, generator=torch.Generator().manual_seed(0)) < 0.5
    _, history = iterative_decode(tiny_model, tokens, mask, DecodeSettings(steps=3), return_history=True)
    history.tokens[1] = history.tokens[1].clone()
    history.tokens[1][0, 5] = tiny_model.mask_id  # a decoder that left a mask id behind (the mask says decided)
    frames = plots.decoding_frames(tiny_tokenizer, history)
    assert frames.shape == (3, 2, 3, 64, 64)
    for t in range(3):
        gray = history.masks[t] | (history.tokens[t] == tiny_model.mask_id)
        torch.testing.assert_close(frames[t], render_tokens(tiny_tokenizer, history.tokens[t], gray))
    assert (frames[1, 0, :, :8, 40:48] == 0).all()  # token 5: row 0, columns 40..47
