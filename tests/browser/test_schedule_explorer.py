"""The schedule explorer in JupyterLab, used as a person uses it: menus, a drop-down, a text box, keys.

The notebook is solutions/04 in fast mode, run with Run ▸ Run All Cells. After each change the
output must show the package's counts for what the controls show, a redrawn picture, and no
error in the output, JupyterLab's log console or the browser console; the same in generation
mode (class, w, T, schedule, with the shipped class-conditional transformer). Screenshots:
artifacts/browser/explorer-*.png.
"""

import pytest
import torch
from browser_lab import Explorer, assert_shows_counts, expected_counts, package_tokens

from maskgit_lab.decoding import GENERATION, DecodeSettings
from maskgit_lab.widgets import MAX_TEMPERATURE

pytestmark = pytest.mark.browser


def assert_no_errors(page, explorer):
    assert page.error_outputs(explorer.root) == [], "the explorer's output shows an error"
    assert page.console_errors() == [], "the browser console shows an error"
    assert page.log_entries() == 0, "JupyterLab's log console has entries (a widget callback failed or printed)"


def test_notebook_runs_without_errors_and_draws_the_explorer(solution_page):
    page = solution_page
    prompts = page.prompts()
    assert all(p not in ("[ ]:", "[*]:") for p in prompts), f"not every code cell ran: {prompts}"
    assert page.error_outputs() == [], "a cell shows an error or stderr output"
    assert page.widget_placeholders() == []
    explorer = Explorer(page)
    assert explorer.settings() == {"mode": "inpaint a test image", "schedule": "cosine", "steps": 8,
                                   "temperature": DecodeSettings().temperature, "image": 0, "stop_early": False, "sweet_spot": 4,
                                   "label": "smileys", "guidance": GENERATION.guidance}
    assert explorer.drawn(), f"the explorer shows no finished drawing: {explorer.text()!r}"
    assert_shows_counts(explorer)
    assert all(picture.startswith(b"\x89PNG") for picture in explorer.pictures())
    assert explorer.notice().text == ""
    tooltips = explorer.tooltips()
    assert set(tooltips) >= {"mode", "schedule γ", "T (steps, 1–16)", "temperature τ", "test image", "stop after k steps"}
    assert "null" not in tooltips.values(), f"hovering over a label shows 'null': {tooltips}"
    assert_no_errors(page, explorer)
    page.screenshot("explorer-first-draw", explorer.root)


def change_and_check(page, name: str, change, what: str, shows: str = "") -> tuple:
    """Screenshot, ``change()``, wait for the redraw, screenshot; returns the drawings before and after."""
    explorer = Explorer(page)
    before = explorer.drawn()
    assert before, "the explorer was not drawn before the change"
    page.screenshot(f"explorer-{name}-before", explorer.root)
    change(explorer)
    after = explorer.wait_redraw(before, what, shows)
    page.screenshot(f"explorer-{name}-after", explorer.root)
    assert_shows_counts(explorer)
    assert_no_errors(page, explorer)
    return explorer, before, after


def test_choosing_a_schedule_redraws_counts_and_picture(solution_page):
    explorer = Explorer(solution_page)
    target = "linear" if explorer.settings()["schedule"] != "linear" else "square"
    explorer, (text, pictures), (new_text, new_pictures) = change_and_check(
        solution_page, "schedule", lambda e: e.choose_schedule(target), f"choosing {target}")
    assert explorer.settings()["schedule"] == target
    assert new_text != text, "the counts line did not change with the schedule"
    assert new_pictures[0] != pictures[0], "the schedule figure was not redrawn"
    assert new_pictures[1] != pictures[1], "the decoded image was not redrawn"


def test_typing_T_redraws_with_T_steps(solution_page):
    target = 5 if Explorer(solution_page).settings()["steps"] != 5 else 12
    explorer, (_, pictures), (_, new_pictures) = change_and_check(
        solution_page, "T", lambda e: e.type_steps(str(target)), f"typing T = {target}")
    assert explorer.settings()["steps"] == target
    counts = explorer.text().split("masked after each step: ")[1].split("\n")[0].split()
    assert len(counts) == target and counts[-1] == "0"
    assert new_pictures[1] != pictures[1], "the decoded image was not redrawn"


def test_arrow_keys_on_the_image_slider_decode_another_image(solution_page):
    start = Explorer(solution_page).settings()["image"]

    def two_right(explorer):
        explorer.press_on_slider("image", "right", times=2)

    # Two keys, two redraws: wait for the one that shows image start + 2.
    explorer, (_, pictures), (_, new_pictures) = change_and_check(
        solution_page, "image-slider", two_right, "two ArrowRight keys", shows=f"test image {start + 2} (")
    assert explorer.settings()["image"] == start + 2
    assert new_pictures[1] != pictures[1], "the decoded image was not redrawn"


def test_temperature_slider_changes_the_picture_not_the_counts(solution_page):
    settings = Explorer(solution_page).settings()
    # A change of τ can leave every decision of a decoding alone (a confident model, a small hole): press
    # the slider's right key (+0.5) as often as it takes the package to decode otherwise, six times at least.
    base = package_tokens(settings, settings["temperature"])
    room = int((MAX_TEMPERATURE - settings["temperature"]) / 0.5)
    presses = next((p for p in range(6, room + 1)
                    if not torch.equal(package_tokens(settings, settings["temperature"] + 0.5 * p), base)), None)
    assert presses, f"the package decodes alike at every τ from {settings['temperature']} to {MAX_TEMPERATURE} here"
    higher = settings["temperature"] + 0.5 * presses
    explorer, (text, pictures), (new_text, new_pictures) = change_and_check(
        solution_page, "temperature", lambda e: e.press_on_slider("temperature", "right", times=presses),
        f"{presses} ArrowRight keys", shows=f"decoded with τ = {higher:.1f}")
    assert explorer.settings()["temperature"] == higher
    counts = [line for line in text.splitlines() if line.startswith("masked after each step:")]
    assert counts and counts == [line for line in new_text.splitlines() if line.startswith("masked after each step:")], \
        "the counts depend on γ, T and n₀ only, not on the temperature"
    assert new_pictures[1] != pictures[1], "the decoded image was not redrawn"


def test_stop_early_decodes_k_steps_then_fills_the_rest(solution_page):
    explorer, _, (text, _) = change_and_check(solution_page, "stop-early", lambda e: e.click_checkbox("stop_early"),
                                              "ticking 'stop early'")
    settings = explorer.settings()
    steps, k = settings["steps"], settings["sweet_spot"]
    assert settings["stop_early"] and 1 <= k < steps, settings
    _, counts = expected_counts(settings["schedule"], steps, settings["image"])
    decoded = counts[: k - 1] + [0]  # k steps decoded; the last of them fills everything still masked
    assert (f"stopped after k = {k} of T = {steps} steps (sweet spot): masked after each decoded step: "
            + " ".join(map(str, decoded))) in text.splitlines()
    before = explorer.drawn()
    explorer.click_checkbox("stop_early")
    explorer.wait_redraw(before, "unticking 'stop early'")
    assert "stopped after" not in explorer.text()


def test_T_zero_is_clamped_with_a_visible_red_message(solution_page):
    explorer, _, (text, _) = change_and_check(solution_page, "T0", lambda e: e.type_steps("0"), "typing T = 0")
    message = "T = 0 is out of range: T must be between 1 and 16; using T = 1."
    notice = explorer.notice()
    assert explorer.settings()["steps"] == 1, "the box still shows an out-of-range T"
    assert notice.is_displayed() and notice.text == message
    assert explorer.notice_color() == "rgba(187, 0, 0, 1)"  # #b00
    assert message in text and "masked after each step: 0" in text.splitlines()
    before = explorer.drawn()
    explorer.type_steps("8")
    explorer.wait_redraw(before, "typing T = 8")
    assert explorer.notice().text == "" and message not in explorer.text(), "a valid T must clear the message"
    assert_shows_counts(explorer)


def test_generation_mode_draws_a_class_and_answers_class_w_T_and_schedule(solution_page):
    explorer, (inpainted, _), (text, pictures) = change_and_check(
        solution_page, "generate", lambda e: e.choose_mode("generate a class"), "choosing 'generate a class'")
    settings = explorer.settings()
    assert settings["mode"] == "generate a class" and f"class {settings['label']} (" in text
    assert "test image" not in text and ") from an empty canvas: " in text
    for name in ("label", "guidance"):
        assert explorer.control(name).is_displayed(), f"generation mode hides its control {name!r}"
    for name in ("temperature", "image", "stop_early", "sweet_spot"):
        assert not explorer.control(name).is_displayed(), f"generation mode shows inpainting's control {name!r}"
    tooltips = explorer.tooltips()
    assert {"class", "guidance w"} <= set(tooltips) and "null" not in tooltips.values(), tooltips

    _, _, (flags, flag_pictures) = change_and_check(solution_page, "generate-class", lambda e: e.choose("label", "flags"),
                                                    "choosing the class flags")
    assert "class flags (Flags) from an empty canvas" in flags
    assert flag_pictures[1] != pictures[1], "another class drew the same picture"
    w = settings["guidance"] + 1.0
    _, _, (_, guided_pictures) = change_and_check(
        solution_page, "generate-w", lambda e: e.press_on_slider("guidance", "right", times=2), "two ArrowRight keys on w",
        shows=f", w = {w:.1f}")
    assert explorer.settings()["guidance"] == w and guided_pictures[1] != flag_pictures[1], "w did not change the picture"
    explorer, _, (stepped, _) = change_and_check(solution_page, "generate-T", lambda e: e.type_steps("4"), "typing T = 4")
    assert len(stepped.split("masked after each step: ")[1].split("\n")[0].split()) == 4
    target = "linear" if settings["schedule"] != "linear" else "square"
    explorer, _, _ = change_and_check(solution_page, "generate-schedule", lambda e: e.choose_schedule(target),
                                      f"choosing {target}")
    assert explorer.settings()["schedule"] == target

    # Back to inpainting: the same test image as before, with the γ and T the two modes share.
    explorer, _, (back, _) = change_and_check(solution_page, "inpaint-again", lambda e: e.choose_mode("inpaint a test image"),
                                              "choosing 'inpaint a test image'")
    assert back.splitlines()[0].split(": n₀")[0] == inpainted.splitlines()[0].split(": n₀")[0]
