"""The schedule explorer: pick γ, T, τ and a test image, and watch iterative decoding happen.

It shows the three things MaskGIT's decoding loop (Chang et al. 2022, Sec. 3.2–3.3) is made
of, for the chosen settings:
  * the mask schedule γ(r) with the T points r = (t+1)/T at which decoding evaluates it;
  * the exact number of tokens still masked after each step, n_t = floor(γ((t+1)/T)·n₀)
    (``decoding.masked_after_step``), as a bar chart and as a line of text;
  * the image after every step (``inpaint(..., return_history=True)``, known pixels pasted),
    masked tokens flat gray.

Its generation mode does the same for a class drawn from an all-masked canvas (n₀ = N, Sec. 4.1):
pick the class, the guidance w (classifier-free guidance), γ and T; τ and s are ``GENERATION``'s.

:func:`explore` and :func:`explore_generation` compute everything and return it as a dict; they
need no browser, so tests and scripts call them directly. :func:`schedule_explorer` wires
ipywidgets controls to them and draws the result into an ``Output`` widget. Nothing here
re-implements decoding.
"""

import base64
import html
import io
import math
import traceback
from dataclasses import replace
from typing import Optional

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: nothing registers with, or leaks from, its figure manager

from maskgit_lab.checkpoint import SHIPPED_MVTM_COND, load_model
from maskgit_lab.classes import CATEGORIES, SHORT_NAMES, class_id
from maskgit_lab.data import to_numpy_image
from maskgit_lab.decoding import GENERATION, DecodeSettings, is_count, masked_after_step
from maskgit_lab.generate import generate
from maskgit_lab.inpaint import inpaint, paste_known, token_mask_from_pixels
from maskgit_lab.plots import decoding_frames, render_tokens
from maskgit_lab.schedules import SCHEDULES, gamma

MAX_STEPS = 16  # one picture per step: beyond this the strip stops being readable
MAX_TEMPERATURE = 10.0
MAX_GUIDANCE = 8.0
PANELS_PER_ROW = 10
MODES = {"inpaint": "inpaint a test image", "generate": "generate a class"}  # value → what its button says


def _check_steps(steps):
    if not is_count(steps) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"T (steps) must be an integer from 1 to {MAX_STEPS}, got {steps!r}")


def _check_settings(steps, temperature, sweet_spot, image_index, count: int):
    _check_steps(steps)
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}, got {temperature}")
    if sweet_spot is not None and not 1 <= sweet_spot <= steps:
        raise ValueError(f"the sweet spot k must be between 1 and T = {steps}, got {sweet_spot}")
    if not 0 <= image_index < count:
        raise ValueError(f"image_index must be between 0 and {count - 1} (the test batch has {count} images), got {image_index}")


def planned_counts(schedule: str, steps: int, n0: int) -> list:
    """Tokens still masked after each of the T steps for n₀ unknowns: exactly what decoding uses."""
    gamma_fn = gamma(schedule)
    n0 = torch.tensor([n0])
    return [int(masked_after_step(gamma_fn, t, steps, n0)[0]) for t in range(steps)]


def counts_text(result: dict) -> str:
    """The counts as lines of text (also what a browser test reads from the page)."""
    if result["mode"] == "generate":
        what = f"class {result['label']} ({result['category']}) from an empty canvas"
        how = f"τ = {result['temperature']:.1f}, s = {result['sampling']}, w = {result['guidance']:.1f}"
    else:
        what, how = f"test image {result['image_index']} ({result['name']})", f"τ = {result['temperature']:.1f}"
    lines = [
        f"{what}: n₀ = {result['n0']} unknown tokens of {result['num_tokens']}, decoded with {how}",
        "masked after each step: " + " ".join(str(n) for n in result["counts"]),
    ]
    k = result.get("sweet_spot")
    if k is not None and k < result["steps"]:
        lines.append(f"stopped after k = {k} of T = {result['steps']} steps (sweet spot): "
                     f"masked after each decoded step: " + " ".join(str(n) for n in result["decoded_counts"]))
    return "\n".join(lines)


def schedule_figure(schedule: str, steps: int, n0: int, counts: list, decoded_counts: list) -> Figure:
    """Left: γ(r) and the points r = (t+1)/T. Right: tokens masked before and after each step."""
    fig = Figure(figsize=(10, 3.4))
    left, right = fig.subplots(1, 2)
    r = torch.linspace(0, 1, 201, dtype=torch.float64)
    for name in SCHEDULES:
        if name != schedule:
            left.plot(r, gamma(name)(r), color="0.85", linewidth=1)
    gamma_fn = gamma(schedule)
    left.plot(r, gamma_fn(r), color="tab:blue", linewidth=2, label=f"γ = {schedule}")
    points = [(t + 1) / steps for t in range(steps)]
    left.plot(points, [gamma_fn(p) for p in points], "o", color="tab:orange", label=f"r = (t+1)/T, T = {steps}")
    left.set(xlabel="r (progress)", ylabel="γ(r) = fraction still masked", title="mask schedule")
    left.legend(fontsize=8)

    x = list(range(steps + 1))
    bars = right.bar(x, [n0] + counts, color="tab:blue", alpha=0.75, label="floor(γ((t+1)/T)·n₀)")
    right.bar_label(bars, fontsize=7)
    if len(decoded_counts) < steps:  # a sweet spot: the decoded run stops early and fills the rest
        right.plot(range(len(decoded_counts) + 1), [n0] + decoded_counts, "o-", color="tab:red",
                   label=f"decoded, stopped after k = {len(decoded_counts)}")
    right.set(xlabel="after step (0 = start)", ylabel="tokens still masked", xticks=x,
              title=f"{schedule}, T = {steps}, n₀ = {n0}")
    right.legend(fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.22)
    return fig


def steps_figure(panels: list, titles: list, gap: int = 6, title_band: int = 22) -> Figure:
    """A strip of (3, S, S) images, wrapped after ``PANELS_PER_ROW`` columns, as one picture.

    The panels are tiled into one array on a single Axes: one Axes per panel would cost a
    second per redraw, and the explorer should answer a slider at once.
    """
    S = panels[0].shape[-1]
    cols = min(len(panels), PANELS_PER_ROW)
    rows = math.ceil(len(panels) / cols)
    cell_w, cell_h = S + gap, S + title_band
    mosaic = np.full((rows * cell_h, cols * cell_w - gap, 3), 255, dtype=np.uint8)
    fig = Figure(figsize=(mosaic.shape[1] / 50, mosaic.shape[0] / 50))  # 50 px per inch: 64-px tiles ≈ 1.3 in
    ax = fig.add_axes((0, 0, 1, 1))
    for i, (panel, title) in enumerate(zip(panels, titles)):
        top, left = (i // cols) * cell_h + title_band, (i % cols) * cell_w
        mosaic[top: top + S, left: left + S] = to_numpy_image(panel)
        ax.text(left + S / 2, top - 2, title, ha="center", va="bottom", fontsize=7, linespacing=1.1)
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    return fig


def step_titles(decoded_counts: list) -> list:
    return [f"step {t + 1}\n{n} masked" for t, n in enumerate(decoded_counts)]


@torch.no_grad()
def explore(schedule: str, steps: int, temperature: float, sweet_spot: Optional[int], image_index: int, *,
            tokenizer, model, test: dict, seed: int = 0, draw: bool = True) -> dict:
    """Decode test image ``image_index`` with the given settings and return what the explorer shows.

    ``test`` is ``data.load_test_batch(...)``: masked (M, 3, S, S), known (M, S, S), gt or None.
    Returns a dict with
      * ``mode`` ("inpaint"), the settings, ``name`` of the image, ``num_tokens`` N and ``n0`` (its unknown tokens);
      * ``counts``: T ints, the tokens masked after each step, from ``masked_after_step``;
      * ``decoded_counts``: the same read from the decoding history (k ints: shorter, ending
        in 0, when the sweet spot k stops early);
      * ``tokens`` (k, N): the codes after each step, mask id where masked; ``token_mask`` (N,):
        True = unknown at the start;
      * ``frames`` (k, 3, S, S): the image after each step with the known pixels pasted;
        ``masked``, ``known``, ``result`` and ``truth`` (None without ground truth) of the image;
      * ``text``: the counts as lines of text; ``figures``: {"schedule", "steps"} matplotlib
        Figures, not registered with pyplot (empty when ``draw`` is False).
    """
    gamma(schedule)  # refuses an unknown name with the list of valid ones
    count = len(test["masked"])
    _check_settings(steps, temperature, sweet_spot, image_index, count)
    device = next(model.parameters()).device
    masked = test["masked"][image_index: image_index + 1].to(device)  # (1, 3, S, S)
    known = test["known"][image_index: image_index + 1].to(device)  # (1, S, S), True = known pixel
    token_mask = token_mask_from_pixels(known, tokenizer.cfg.downsample)  # (1, N), True = unknown token
    n0 = int(token_mask.sum())
    settings = DecodeSettings(schedule, steps, temperature, sweet_spot)
    result, history = inpaint(tokenizer, model, masked, known, settings, torch.Generator().manual_seed(seed),
                              return_history=True)
    frames = torch.cat([paste_known(render_tokens(tokenizer, tokens, mask), masked, known)
                        for tokens, mask in zip(history.tokens, history.masks)])  # (k, 3, S, S)
    truth = None if test.get("gt") is None else test["gt"][image_index].to(device)
    out = {
        "mode": "inpaint", "schedule": schedule, "steps": steps, "temperature": float(temperature), "sweet_spot": sweet_spot,
        "image_index": image_index, "name": test["names"][image_index] if "names" in test else str(image_index),
        "num_tokens": tokenizer.cfg.num_tokens, "n0": n0,
        "counts": planned_counts(schedule, steps, n0),
        "decoded_counts": [int(n[0]) for n in history.num_masked],
        "tokens": torch.cat(history.tokens).cpu(), "token_mask": token_mask[0].cpu(),
        "frames": frames.cpu(), "masked": masked[0].cpu(), "known": known[0].cpu(), "result": result[0].cpu(),
        "truth": None if truth is None else truth.cpu(),
    }
    out["text"] = counts_text(out)
    out["figures"] = {}
    if not draw:
        return out
    panels = [out["masked"], *out["frames"], out["result"]] + ([out["truth"]] if truth is not None else [])
    titles = ["masked input"] + step_titles(out["decoded_counts"]) + ["result"] + (["truth"] if truth is not None else [])
    out["figures"] = {
        "schedule": schedule_figure(schedule, steps, n0, out["counts"], out["decoded_counts"]),
        "steps": steps_figure(panels, titles),
    }
    return out


@torch.no_grad()
def explore_generation(label: str, guidance: float, schedule: str, steps: int, *, tokenizer, model, seed: int = 0,
                       draw: bool = True) -> dict:
    """Generate one image of class ``label`` (a name of ``classes.SHORT_NAMES``) from an all-masked canvas with
    guidance w = ``guidance``, γ = ``schedule`` and T = ``steps`` (τ and s: ``GENERATION``'s); return what the
    explorer shows.

    ``model`` is a class-conditional transformer (``generate`` refuses another). The dict holds what
    :func:`explore`'s does, but the test image: ``label``, ``category``, ``guidance``, ``sampling``
    (s, or s₀→s when it falls); n₀ = N; ``frames`` (T, 3, S, S) the image after each step, masked tokens
    gray; ``result`` the image.
    """
    gamma(schedule)  # refuses an unknown name with the list of valid ones
    _check_steps(steps)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"guidance w must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}")
    index = class_id(label)  # refuses an unknown class with the list of names
    settings = replace(GENERATION, schedule=schedule, steps=steps, guidance=float(guidance))
    device = next(model.parameters()).device
    images, history = generate(tokenizer, model, torch.tensor([index], device=device), settings,
                               torch.Generator().manual_seed(seed), return_history=True)
    N = tokenizer.cfg.num_tokens
    out = {
        "mode": "generate", "label": SHORT_NAMES[index], "category": CATEGORIES[index], "guidance": float(guidance),
        "schedule": schedule, "steps": steps, "temperature": settings.temperature,
        "sampling": settings.sampling, "num_tokens": N, "n0": N,
        "counts": planned_counts(schedule, steps, N), "decoded_counts": [int(n[0]) for n in history.num_masked],
        "tokens": torch.cat(history.tokens).cpu(), "frames": decoding_frames(tokenizer, history)[:, 0].cpu(),
        "result": images[0].cpu(),
    }
    out["text"] = counts_text(out)
    out["figures"] = {}
    if draw:
        out["figures"] = {
            "schedule": schedule_figure(schedule, steps, N, out["counts"], out["decoded_counts"]),
            "steps": steps_figure([*out["frames"], out["result"]],
                                  step_titles(out["decoded_counts"]) + [f"{out['label']}\nw = {guidance:.1f}"]),
        }
    return out


def figure_output(fig: Figure) -> dict:
    """A notebook display_data output holding ``fig`` as a PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": "<figure>"}}


def text_output(text: str, stream: str = "stdout") -> dict:
    return {"output_type": "stream", "name": stream, "text": text.rstrip("\n") + "\n"}


class ScheduleExplorer(widgets.VBox):
    """Controls on top, an ``Output`` below; every change re-runs :func:`explore` (or, in generation mode,
    :func:`explore_generation`) and redraws.

    ``controls`` maps a name to its widget, ``output`` is the Output widget, ``notice`` shows
    refused values, and ``last`` holds the latest result (None after an error). ``conditional`` is
    the class-conditional transformer of generation mode, or the path it is loaded from the first
    time that mode draws.
    """

    def __init__(self, tokenizer, model, test: dict, seed: int = 0, conditional=SHIPPED_MVTM_COND):
        self.tokenizer, self.model, self.test, self.seed, self.conditional = tokenizer, model, test, seed, conditional
        style = {"description_width": "initial"}
        count = len(test["masked"])
        default = DecodeSettings()
        # Every control gets a tooltip: without one, ipywidgets 8 sets its label's title to the
        # text "null", and hovering over the label shows "null".
        self.controls = {
            "mode": widgets.ToggleButtons(options=[(text, value) for value, text in MODES.items()], value="inpaint",
                                          description="mode", style=style | {"button_width": "auto"},
                                          tooltip="inpaint a masked test image, or generate a class from an all-masked canvas",
                                          tooltips=["fill the masked part of a test image",
                                                    "draw an image of a class from nothing but its label"]),
            "schedule": widgets.Dropdown(options=list(SCHEDULES), value=default.schedule, description="schedule γ", style=style,
                                         tooltip="γ(r): the fraction of the n₀ unknown tokens still masked at progress r"),
            # IntText, not BoundedIntText: a bounded box clamps silently in the browser; here an
            # out-of-range T is clamped by us and the notice says so.
            "steps": widgets.IntText(value=default.steps, description=f"T (steps, 1–{MAX_STEPS})", continuous_update=False,
                                     style=style,
                                     tooltip=f"T: the number of decoding steps, 1 to {MAX_STEPS}; type it and press Enter"),
            "temperature": widgets.FloatSlider(value=default.temperature, min=0.0, max=MAX_TEMPERATURE, step=0.5,
                                               description="temperature τ", continuous_update=False, style=style,
                                               tooltip="τ: the scale of the Gumbel noise, annealed to 0 by the last step"),
            "stop_early": widgets.Checkbox(value=False, description="stop early (sweet spot)", indent=False),
            "sweet_spot": widgets.IntSlider(value=default.steps // 2, min=1, max=default.steps, description="stop after k steps",
                                            disabled=True, continuous_update=False, style=style,
                                            tooltip="k: decode k of the T steps, then fill every token still masked"),
            "image": widgets.IntSlider(value=0, min=0, max=max(count - 1, 0), description="test image",
                                       continuous_update=False, style=style, tooltip="which test image to decode"),
            "label": widgets.Dropdown(options=list(SHORT_NAMES), value=SHORT_NAMES[0], description="class", style=style,
                                      tooltip="the emoji category to generate"),
            "guidance": widgets.FloatSlider(value=GENERATION.guidance, min=0.0, max=MAX_GUIDANCE, step=0.5,
                                            description="guidance w", continuous_update=False, style=style,
                                            tooltip="w: 0 ignores the label, 1 is the conditional model, above 1 pushes "
                                                    "away from the unconditional one"),
        }
        self.notice = widgets.HTML(value="")
        self.output = widgets.Output(layout=widgets.Layout(min_height="320px"))
        self.last: Optional[dict] = None
        self.runs = 0
        self._syncing = False
        c = self.controls
        # What only one mode uses is hidden in the other.
        self.only = {"inpaint": [c["temperature"], widgets.HBox([c["image"], c["stop_early"], c["sweet_spot"]])],
                     "generate": [widgets.HBox([c["label"], c["guidance"]])]}
        super().__init__([
            c["mode"],
            widgets.HBox([c["schedule"], c["steps"], c["temperature"]]),
            self.only["inpaint"][1],
            self.only["generate"][0],
            self.notice,
            self.output,
        ])
        self._show_mode()
        for control in c.values():
            control.observe(self._changed, names="value")
        self.redraw()

    def settings(self) -> dict:
        c = self.controls
        if c["mode"].value == "generate":
            return {"label": c["label"].value, "guidance": c["guidance"].value, "schedule": c["schedule"].value,
                    "steps": c["steps"].value}
        return {
            "schedule": c["schedule"].value,
            "steps": c["steps"].value,
            "temperature": c["temperature"].value,
            "sweet_spot": c["sweet_spot"].value if c["stop_early"].value else None,
            "image_index": c["image"].value,
        }

    def _show_mode(self):
        for mode, widgets_of_mode in self.only.items():
            for widget in widgets_of_mode:
                widget.layout.display = None if mode == self.controls["mode"].value else "none"

    def _changed(self, change):
        if self._syncing:  # a value we set ourselves below; one redraw follows
            return
        self._syncing = True
        try:
            notice = self._sync_controls()
        finally:
            self._syncing = False
        self.notice.value = f"<b style='color:#b00'>{html.escape(notice)}</b>" if notice else ""
        self.redraw(notice)

    def _sync_controls(self) -> str:
        """Clamp T into 1..MAX_STEPS (saying so), keep k within 1..T and show the mode's controls; returns the notice."""
        c, notice = self.controls, ""
        steps = c["steps"].value
        if not 1 <= steps <= MAX_STEPS:
            clamped = min(max(steps, 1), MAX_STEPS)
            notice = f"T = {steps} is out of range: T must be between 1 and {MAX_STEPS}; using T = {clamped}."
            c["steps"].value = clamped
        k = c["sweet_spot"]
        k.max = c["steps"].value  # ipywidgets lowers k's value with its max
        k.disabled = not c["stop_early"].value
        self._show_mode()
        return notice

    def conditional_model(self):
        """Generation mode's transformer, loaded from its path the first time that mode draws."""
        if not isinstance(self.conditional, torch.nn.Module):
            self.conditional = load_model(self.conditional, "mvtm", device=next(self.model.parameters()).device)
        return self.conditional

    def redraw(self, notice: str = ""):
        """Run :func:`explore` (or :func:`explore_generation`) with the current settings and replace the Output's contents."""
        self.runs += 1
        settings = self.settings()
        generating = self.controls["mode"].value == "generate"
        self.output.outputs = (text_output(("generating with " if generating else "decoding with ")
                                          + ", ".join(f"{k} = {v}" for k, v in settings.items()) + " …"),)
        try:
            if generating:
                result = explore_generation(**settings, tokenizer=self.tokenizer, model=self.conditional_model(), seed=self.seed)
            else:
                result = explore(**settings, tokenizer=self.tokenizer, model=self.model, test=self.test, seed=self.seed)
        except Exception as err:  # shown in the Output: a widget callback's exception is otherwise only logged
            self.last = None
            self.output.outputs = (text_output(f"The explorer could not draw this setting: {type(err).__name__}: {err}\n\n"
                                               + traceback.format_exc(limit=-3), stream="stderr"),)
            return
        self.last = result
        self.output.outputs = (
            text_output((notice + "\n" if notice else "") + result["text"]),
            figure_output(result["figures"]["schedule"]),
            figure_output(result["figures"]["steps"]),
        )


def schedule_explorer(tokenizer, model, test: dict, seed: int = 0, conditional=SHIPPED_MVTM_COND):
    """The interactive explorer (an ``ipywidgets.VBox``); display it as a notebook cell's last line.

    ``test`` is ``data.load_test_batch(...)``. Each redraw decodes one image with the package's
    ``inpaint``/``iterative_decode`` (generation mode: ``generate`` with the class-conditional
    transformer ``conditional``, a model or the path of a checkpoint, by default the shipped one) and
    seed ``seed``, so a setting always gives the same picture.
    """
    return ScheduleExplorer(tokenizer, model, test, seed, conditional)
