import base64
from dataclasses import replace

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from maskgit_lab import widgets
from maskgit_lab.classes import NUM_CLASSES, SHORT_NAMES
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import GENERATION, masked_after_step
from maskgit_lab.generate import generate
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.schedules import SCHEDULES, gamma
from maskgit_lab.transformer import BidirectionalTransformer
from maskgit_lab.widgets import MAX_GUIDANCE, MAX_STEPS, explore, explore_generation, schedule_explorer
from tests.conftest import TINY_TF


@pytest.fixture(scope="module")
def test_batch():
    return load_test_batch(DEFAULT_ROOT, limit=2)


@pytest.fixture
def models(tiny_tokenizer, tiny_model):
    return {"tokenizer": tiny_tokenizer, "model": tiny_model}


@pytest.fixture
def tiny_generator():
    """A tiny transformer conditional on the course's classes, whose labels change its logits."""
    torch.manual_seed(0)
    model = BidirectionalTransformer(replace(TINY_TF, num_classes=NUM_CLASSES)).eval()
    torch.nn.init.normal_(model.class_emb.weight)
    return model


@pytest.fixture
def explorer(models, test_batch, tiny_generator):
    return schedule_explorer(models["tokenizer"], models["model"], test_batch, conditional=tiny_generator)


def expected_counts(schedule, steps, known, downsample):
    n0 = token_mask_from_pixels(known.unsqueeze(0), downsample).sum(1)  # (1,)
    return int(n0), [int(masked_after_step(gamma(schedule), t, steps, n0)[0]) for t in range(steps)]


def output_text(explorer) -> str:
    return "".join(o.get("text", "") for o in explorer.output.outputs)


@pytest.mark.parametrize("schedule, steps", [(s, T) for s, T in zip(SCHEDULES, [1, 2, 5, 8, 12, 16])]
                         + [("cosine", 3), ("arccos", 16), ("cubic", 7)])
def test_counts_are_masked_after_step_exactly(models, test_batch, schedule, steps):
    for i in range(2):
        result = explore(schedule, steps, 4.5, None, i, **models, test=test_batch, draw=False)
        n0, counts = expected_counts(schedule, steps, test_batch["known"][i], models["tokenizer"].cfg.downsample)
        assert result["n0"] == n0 and result["counts"] == counts
        assert result["decoded_counts"] == counts, "the decoding history disagrees with masked_after_step"
        assert counts[-1] == 0
        assert "masked after each step: " + " ".join(map(str, counts)) in result["text"]
        assert f"n₀ = {n0} unknown tokens" in result["text"]



def test_the_text_states_the_temperature_it_decoded_with(models, test_batch):
    for tau in (0.0, 4.5):
        assert f"decoded with τ = {tau:.1f}" in explore("cosine", 4, tau, None, 0, **models, test=test_batch, draw=False)["text"]

def test_sweet_spot_stops_after_k_steps(models, test_batch):
    result = explore("linear", 10, 4.5, 3, 0, **models, test=test_batch)
    assert result["decoded_counts"] == result["counts"][:2] + [0]
    assert result["frames"].shape[0] == 3
    assert "stopped after k = 3 of T = 10" in result["text"]
    assert "masked after each decoded step: " + " ".join(map(str, result["decoded_counts"])) in result["text"]


@pytest.mark.parametrize("sweet_spot", [None, 2])
def test_known_tokens_and_pixels_unchanged_in_every_shown_step(models, test_batch, sweet_spot):
    for i in range(2):
        result = explore("cosine", 6, 4.5, sweet_spot, i, **models, test=test_batch)
        unknown = result["token_mask"]  # (N,)
        encoded = models["tokenizer"].encode(test_batch["masked"][i: i + 1])[0]
        for tokens in result["tokens"]:
            assert torch.equal(tokens[~unknown], encoded[~unknown])
        assert (result["tokens"][-1] < models["model"].mask_id).all(), "a mask id is left after the last step"
        known = result["known"]  # (S, S)
        assert known.any() and (~known).any()
        original = test_batch["masked"][i][:, known]
        for frame in [*result["frames"], result["result"]]:
            assert torch.equal(frame[:, known], original)
        assert torch.equal(result["masked"], test_batch["masked"][i])


def test_explore_returns_figures_without_leaking_pyplot(models, test_batch):
    before = plt.get_fignums()
    result = explore("square", 4, 1.0, None, 1, **models, test=test_batch)
    assert set(result["figures"]) == {"schedule", "steps"}
    assert all(isinstance(fig, Figure) for fig in result["figures"].values())
    ex = schedule_explorer(models["tokenizer"], models["model"], test_batch)
    ex.controls["steps"].value = 3
    assert plt.get_fignums() == before


@pytest.mark.parametrize("kwargs, words", [
    ({"schedule": "cos"}, "choose one of: cosine"),
    ({"steps": 0}, "from 1 to 16"),
    ({"steps": MAX_STEPS + 1}, "from 1 to 16"),
    ({"steps": 2.5}, "integer"),
    ({"temperature": -1.0}, "temperature"),
    ({"sweet_spot": 9}, "between 1 and T = 8"),
    ({"image_index": 2}, "between 0 and 1"),
])
def test_explore_refuses_bad_settings(models, test_batch, kwargs, words):
    settings = dict(schedule="cosine", steps=8, temperature=4.5, sweet_spot=None, image_index=0) | kwargs
    with pytest.raises(ValueError, match=words):
        explore(**settings, **models, test=test_batch)


def test_controls_are_labelled_and_update_on_release(explorer):
    labels = [control.description for control in explorer.controls.values()]
    assert all(labels) and len(set(labels)) == len(labels)
    for control in explorer.controls.values():
        if hasattr(control, "continuous_update"):
            assert control.continuous_update is False
    assert list(explorer.controls["schedule"].options) == list(SCHEDULES)
    assert explorer.controls["image"].max == 1


def test_first_draw_shows_counts_and_two_pictures(explorer):
    text, *pictures = explorer.output.outputs
    assert text["output_type"] == "stream" and "masked after each step:" in text["text"]
    assert len(pictures) == 2
    for picture in pictures:
        assert base64.b64decode(picture["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.runs == 1 and explorer.notice.value == ""


@pytest.mark.parametrize("name, value, key, expected", [
    ("schedule", "linear", "schedule", "linear"),
    ("steps", 5, "steps", 5),
    ("temperature", 0.0, "temperature", 0.0),
    ("image", 1, "image_index", 1),
])
def test_changing_a_control_redraws_the_output(explorer, test_batch, name, value, key, expected):
    before = explorer.output.outputs
    explorer.controls[name].value = value
    assert explorer.runs == 2
    assert explorer.last[key] == expected
    assert explorer.output.outputs != before
    settings = explorer.settings()
    n0, counts = expected_counts(settings["schedule"], settings["steps"], test_batch["known"][settings["image_index"]],
                                 explorer.tokenizer.cfg.downsample)
    assert "masked after each step: " + " ".join(map(str, counts)) in output_text(explorer)


def test_sweet_spot_controls(explorer):
    k = explorer.controls["sweet_spot"]
    assert k.disabled and explorer.last["sweet_spot"] is None
    explorer.controls["stop_early"].value = True
    assert not k.disabled and explorer.last["sweet_spot"] == k.value
    assert len(explorer.last["decoded_counts"]) == k.value
    k.value = 6
    explorer.controls["steps"].value = 4  # k follows T down
    assert k.max == 4 and k.value == 4 and explorer.last["sweet_spot"] == 4 and explorer.last["steps"] == 4
    explorer.controls["stop_early"].value = False
    assert k.disabled and explorer.last["sweet_spot"] is None


@pytest.mark.parametrize("typed, used", [(20, MAX_STEPS), (0, 1), (-3, 1)])
def test_out_of_range_T_is_clamped_with_a_visible_message(explorer, typed, used):
    runs = explorer.runs
    explorer.controls["steps"].value = typed
    assert explorer.controls["steps"].value == used
    assert explorer.runs == runs + 1, "one redraw, with the clamped T"
    assert explorer.last["steps"] == used and len(explorer.last["counts"]) == used
    message = f"T = {typed} is out of range"
    assert message in explorer.notice.value and message in output_text(explorer)
    explorer.controls["steps"].value = 8  # a valid value clears the notice
    assert explorer.notice.value == "" and message not in output_text(explorer)


def test_errors_in_the_callback_are_shown_in_the_output(explorer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the decoder fell over")

    monkeypatch.setattr(widgets, "inpaint", broken)
    explorer.controls["temperature"].value = 2.0  # must not raise out of the callback
    assert explorer.last is None
    (message,) = explorer.output.outputs
    assert message["name"] == "stderr" and "RuntimeError: the decoder fell over" in message["text"]
    monkeypatch.undo()
    explorer.controls["temperature"].value = 3.0
    assert explorer.last is not None and "masked after each step:" in output_text(explorer)


def gray_pixels(mask: torch.Tensor, downsample: int) -> torch.Tensor:
    """(3, S, S): the pixels of the True tokens of ``mask`` (N,)."""
    g = int(mask.numel() ** 0.5)
    patch = torch.nn.functional.interpolate(mask.view(1, 1, g, g).float(), scale_factor=downsample).bool()[0]
    return patch.expand(3, -1, -1)


@pytest.mark.parametrize("schedule, steps", [("cosine", 8), ("linear", 1), ("cubic", 5)])
def test_generation_counts_frames_and_image_are_the_packages(models, tiny_generator, schedule, steps):
    tokenizer = models["tokenizer"]
    result = explore_generation("flags", 3.0, schedule, steps, tokenizer=tokenizer, model=tiny_generator, seed=4)
    N = tokenizer.cfg.num_tokens
    assert result["n0"] == N and result["counts"] == [int(masked_after_step(gamma(schedule), t, steps, torch.tensor([N]))[0])
                                                      for t in range(steps)]
    assert result["decoded_counts"] == result["counts"]
    settings = replace(GENERATION, schedule=schedule, steps=steps, guidance=3.0)
    image = generate(tokenizer, tiny_generator, torch.tensor([SHORT_NAMES.index("flags")]), settings,
                     torch.Generator().manual_seed(4))
    assert torch.equal(result["result"], image[0]), "the explorer's image is not generate()'s for the same seed"
    assert result["frames"].shape == (steps, 3, 64, 64)
    torch.testing.assert_close(result["frames"][-1], image[0], rtol=0, atol=1e-5)  # decoded in another batch
    assert (result["tokens"][-1] < tiny_generator.mask_id).all()
    text = result["text"].splitlines()
    assert text[0] == (f"class flags (Flags) from an empty canvas: n₀ = {N} unknown tokens of {N}, "
                       f"decoded with τ = {GENERATION.temperature:.1f}, s = {GENERATION.sampling}, w = 3.0")
    assert text[1] == "masked after each step: " + " ".join(map(str, result["counts"]))
    assert set(result["figures"]) == {"schedule", "steps"}


def test_generation_frames_show_masked_tokens_flat_gray_and_decided_ones_as_decoded(models, tiny_generator):
    tokenizer = models["tokenizer"]
    result = explore_generation("smileys", 2.0, "cosine", 4, tokenizer=tokenizer, model=tiny_generator, draw=False)
    for tokens, frame in zip(result["tokens"], result["frames"]):
        masked = tokens == tiny_generator.mask_id  # (N,)
        gray = gray_pixels(masked, tokenizer.cfg.downsample)
        assert masked.any() == (frame[gray].numel() > 0) and frame[gray].eq(0).all(), "a masked token is not flat gray"
    torch.testing.assert_close(result["frames"][-1], tokenizer.decode(result["tokens"][-1:])[0], rtol=0, atol=1e-5)


def test_guidance_and_class_change_the_generated_image(models, tiny_generator):
    def tokens(label, w):
        return explore_generation(label, w, "cosine", 4, **(models | {"model": tiny_generator}), draw=False)["tokens"][-1]

    assert not torch.equal(tokens("flags", 1.0), tokens("animals", 1.0))
    assert not torch.equal(tokens("flags", 1.0), tokens("flags", 4.0))
    assert torch.equal(tokens("flags", 4.0), tokens("flags", 4.0)), "one setting, one picture"


@pytest.mark.parametrize("kwargs, words", [
    ({"label": "dogs"}, "choose one of: smileys"),
    ({"guidance": -0.5}, f"from 0 to {MAX_GUIDANCE:g}"),
    ({"guidance": MAX_GUIDANCE + 1}, f"from 0 to {MAX_GUIDANCE:g}"),
    ({"steps": 0}, "from 1 to 16"),
    ({"schedule": "cos"}, "choose one of: cosine"),
])
def test_explore_generation_refuses_bad_settings(models, tiny_generator, kwargs, words):
    settings = dict(label="flags", guidance=2.0, schedule="cosine", steps=8) | kwargs
    with pytest.raises(ValueError, match=words):
        explore_generation(**settings, tokenizer=models["tokenizer"], model=tiny_generator)


def displayed(widget) -> bool:
    return widget.layout.display != "none"


def test_generation_mode_shows_its_controls_and_redraws_on_each(explorer):
    c = explorer.controls
    assert not displayed(explorer.only["generate"][0]) and all(map(displayed, explorer.only["inpaint"]))
    c["mode"].value = "generate"
    assert explorer.runs == 2 and explorer.last["mode"] == "generate"
    assert displayed(explorer.only["generate"][0]) and not any(map(displayed, explorer.only["inpaint"]))
    assert explorer.settings() == {"label": "smileys", "guidance": GENERATION.guidance, "schedule": "cosine", "steps": 8}
    assert list(c["label"].options) == list(SHORT_NAMES)
    for name, value, key in [("label", "flags", "label"), ("guidance", 4.5, "guidance"), ("steps", 3, "steps"),
                             ("schedule", "sqrt", "schedule")]:
        runs = explorer.runs
        c[name].value = value
        assert explorer.runs == runs + 1 and explorer.last[key] == value
    text, *pictures = explorer.output.outputs
    assert "class flags (Flags) from an empty canvas" in text["text"] and ", w = 4.5" in text["text"]
    assert "masked after each step: " + " ".join(map(str, explorer.last["counts"])) in text["text"]
    assert len(pictures) == 2
    c["mode"].value = "inpaint"  # the inpainting settings come back as they were
    assert explorer.last["mode"] == "inpaint" and explorer.last["image_index"] == 0 and explorer.last["steps"] == 3


@pytest.mark.parametrize("conditional, words", [("tiny_model", "this transformer is unconditional"),
                                                ("shipped", "use the pair trained together")])
def test_a_transformer_that_cannot_generate_is_named_in_the_output(models, test_batch, conditional, words):
    model = models["model"] if conditional == "tiny_model" else widgets.SHIPPED_MVTM_COND  # the path: loaded on demand
    ex = schedule_explorer(models["tokenizer"], models["model"], test_batch, conditional=model)
    ex.controls["mode"].value = "generate"
    assert ex.last is None
    (message,) = ex.output.outputs
    assert message["name"] == "stderr" and words in message["text"]
    ex.controls["mode"].value = "inpaint"
    assert ex.last is not None and "masked after each step:" in output_text(ex)
