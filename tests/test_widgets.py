import base64

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from maskgit_lab import widgets
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import masked_after_step
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.schedules import SCHEDULES, gamma
from maskgit_lab.widgets import MAX_STEPS, explore, schedule_explorer


@pytest.fixture(scope="module")
def test_batch():
    return load_test_batch(DEFAULT_ROOT, limit=2)


@pytest.fixture
def models(tiny_tokenizer, tiny_model):
    return {"tokenizer": tiny_tokenizer, "model": tiny_model}


@pytest.fixture
def explorer(models, test_batch):
    return schedule_explorer(models["tokenizer"], models["model"], test_batch)


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
