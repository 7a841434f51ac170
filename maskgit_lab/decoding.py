"""Iterative decoding (MaskGIT, Chang et al. 2022, Sec. 3.2 and Algorithm in Fig. 2).

Start from the known tokens and n₀ unknown ones (per image). At step t = 0 … T−1:
  1. predict every masked token and sample a code from p(· | visible tokens);
  2. confidence_i = log p(sampled_i) + τ·(1 − (t+1)/T)·g_i, with g_i ~ Gumbel(0, 1)
     independent per token: noise helps diversity early and fades to nothing;
  3. keep the most confident samples and re-mask the
     n_t = floor(γ((t+1)/T)·n₀) least confident ones (at least 1 while t < T−1).
Known tokens are never changed nor re-masked, and a token decoded at one step stays.
Counts come from n₀, the unknowns at the start — not from the tokens masked right now.
``decode_step`` is one such step (the exercise of notebook 04); ``iterative_decode`` loops it
with the step it is given. ``DecodeSettings`` holds γ, T, τ, the sampling temperature and the
sweet spot, and its defaults are the course's one default decode setting: every command,
figure and check starts from it.

Class-conditional decoding with classifier-free guidance (Ho & Salimans 2022): the model is run
with the class c and with the null class in one forward pass of 2B rows, and a step sees

    ℓ = ℓ_uncond + w·(ℓ_cond − ℓ_uncond)

w = 0 is the unconditional model, w = 1 the conditional one (computed without the second half),
w > 1 pushes each token further toward what the label adds.

The sampling temperature s divides the logits before a step sees them, so codes are sampled
from softmax(logits / s) and the confidence is that distribution's log-probability. MaskGIT
samples at s = 1; s < 1 samples closer to the most likely code. For inpainting, where the hole
must continue the known pixels rather than add variety, a lower s scores better on the whole
test set (README, "Quality").
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from maskgit_lab.schedules import gamma


def is_count(value) -> bool:
    """An ``int`` and not a ``bool`` (which Python counts as one): how T and other counts are checked."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode: schedule γ (by name), steps T, Gumbel temperature τ, optional sweet spot k,
    sampling temperature s (optionally falling from a hotter first step), rounds of re-tokenizing
    the inpainted image, a blur of the fill, and the guidance scale w (used when a class label is given).

    ``first_sample_temperature=s₀`` makes the sampling temperature fall linearly over the steps:
    step 1 samples at s₀, step T at ``sample_temperature``; T = 1 samples at s₀ (its one step is a
    first step). None samples every step at ``sample_temperature``.

    ``sweet_spot=k`` stops after k of the T steps and fills every token still masked then.
    ``retokenize`` and ``blur`` are for inpainting (``inpaint.inpaint``; ``iterative_decode`` ignores
    them): ``retokenize=r`` times, the image with its known pixels pasted back is encoded and decoded
    again by the tokenizer; then the generated pixels are blurred with a 5 × 5 Gaussian of
    σ = ``blur`` pixels (0: not at all) before the known pixels are pasted back.
    """

    schedule: str = "cosine"
    steps: int = 8
    temperature: float = 1.0
    sweet_spot: Optional[int] = None
    sample_temperature: float = 0.3
    retokenize: int = 5
    blur: float = 0.5
    guidance: float = 1.0
    first_sample_temperature: Optional[float] = None

    def __post_init__(self):
        gamma(self.schedule)  # refuses an unknown name with the list of valid ones
        if not is_count(self.steps) or self.steps < 1:
            raise ValueError(f"steps (T) must be an integer ≥ 1, got {self.steps!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0, got {self.temperature}")
        if not (math.isfinite(self.sample_temperature) and self.sample_temperature > 0):
            raise ValueError(f"sample_temperature must be a finite number > 0 (1 samples the model's own "
                             f"distribution, smaller is greedier), got {self.sample_temperature}")
        first = self.first_sample_temperature
        if first is not None and (isinstance(first, bool) or not isinstance(first, (int, float))
                                  or not (math.isfinite(first) and first > 0)):
            raise ValueError(f"first_sample_temperature must be a finite number > 0 (the first step's s, falling to "
                             f"sample_temperature by the last) or None, got {first!r}")
        if self.sweet_spot is not None and not 1 <= self.sweet_spot <= self.steps:
            raise ValueError(f"sweet_spot must be between 1 and steps={self.steps}, got {self.sweet_spot}")
        if not is_count(self.retokenize) or self.retokenize < 0:
            raise ValueError(f"retokenize must be an integer ≥ 0 (0 keeps the first decoded image), got {self.retokenize!r}")
        if isinstance(self.blur, bool) or not isinstance(self.blur, (int, float)) or not (math.isfinite(self.blur) and self.blur >= 0):
            raise ValueError(f"blur must be a finite number ≥ 0 (σ in pixels; 0 leaves the fill sharp), got {self.blur!r}")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) or not (
                math.isfinite(self.guidance) and self.guidance >= 0):
            raise ValueError(f"guidance w must be a finite number ≥ 0 (0: unconditional, 1: the conditional model, "
                             f"> 1: guided), got {self.guidance!r}")

    def sample_temperature_at(self, t: int) -> float:
        """The sampling temperature of step t (0-based): s₀ → s linearly over the T steps, or s throughout."""
        first = self.first_sample_temperature
        if first is None:
            return self.sample_temperature
        return first if self.steps == 1 else first + (self.sample_temperature - first) * t / (self.steps - 1)

    @property
    def sampling(self) -> str:
        """The sampling temperature as the tables print it: ``0.5``, or ``1→0.5`` when it falls."""
        first = self.first_sample_temperature
        return f"{self.sample_temperature:g}" if first is None else f"{first:g}→{self.sample_temperature:g}"

    @property
    def label(self) -> str:
        """The row name in quality tables: ``cosine T=8 retok×5 blur 0.5``, ``cubic T=12 stop@4 retok×5 blur 0.5``."""
        return (f"{self.schedule} T={self.steps}" + (f" stop@{self.sweet_spot}" if self.sweet_spot else "")
                + (f" retok×{self.retokenize}" if self.retokenize else "") + (f" blur {self.blur:g}" if self.blur else "")
                + (f" w={self.guidance:g}" if self.guidance != 1 else ""))


# The course's default for generation from an empty canvas, beside the inpainting default
# (``DecodeSettings()``): cubic T = 12, Gumbel noise τ = 2 (MaskGIT's 4.5 commits scattered specks
# early), a sampling temperature falling from s = 1 (the model's own distribution: the first steps
# draw a varied layout) to 0.5 (the last steps fill in details), guidance w = 4, and no re-tokenizing
# or blur (nothing known to paste back). Chosen on the whole test set (data/checkpoints/README.md,
# "Searching for the generation default"); README "Generation" has the table.
GENERATION = DecodeSettings("cubic", 12, 2.0, sample_temperature=0.5, first_sample_temperature=1.0, retokenize=0,
                            blur=0.0, guidance=4.0)


def guided(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on logits: ℓ_uncond + w·(ℓ_cond − ℓ_uncond)."""
    return uncond + guidance * (cond - uncond)


def guided_logits(model, tokens: torch.Tensor, labels: Optional[torch.Tensor], guidance: float,
                  null_class: Optional[int] = None) -> torch.Tensor:
    """The model's logits (B, N, K) for ``tokens`` (B, N) given class ids ``labels`` (B,), guided by w.

    No labels: the model alone (a conditional model sees the null class). w = 1: the conditional
    model, one pass. Otherwise the labelled and the null rows go through one forward pass (2B rows).
    ``null_class`` defaults to ``model.null_class`` (notebook 06 passes it, for a model that is a plain function).
    """
    if labels is None:
        return model(tokens)
    if guidance == 1:
        return model(tokens, labels)
    null = torch.full_like(labels, model.null_class if null_class is None else null_class)
    both = model(torch.cat([tokens, tokens]), torch.cat([labels, null]))  # (2B, N, K)
    cond, uncond = both.chunk(2)  # (B, N, K) each
    return guided(cond, uncond, guidance)


@dataclass
class DecodeHistory:
    """Tokens (with the mask id where masked) and masks after each step, for plots/widgets."""

    tokens: list = field(default_factory=list)  # T × (B, N)
    masks: list = field(default_factory=list)  # T × (B, N) bool, True = still masked
    num_masked: list = field(default_factory=list)  # T × (B,)


def gumbel_noise(shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Standard Gumbel samples −log(−log U), one per entry."""
    u = torch.rand(shape, generator=generator).clamp(1e-20, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def annealed_temperature(temperature: float, t: int, steps: int) -> float:
    """τ·(1 − (t+1)/T): full noise at the first step, none at the last."""
    return temperature * (1 - (t + 1) / steps)


def masked_after_step(schedule, t: int, steps: int, n0: torch.Tensor) -> torch.Tensor:
    """n_t = floor(γ((t+1)/T)·n₀), kept ≥ 1 before the last step while anything was unknown."""
    n = torch.floor(schedule((t + 1) / steps) * n0.double()).long()
    if t < steps - 1:
        n = torch.where(n0 > 0, n.clamp(min=1), n)
    return n


@torch.no_grad()
def decode_step(
    logits: torch.Tensor,
    current: torch.Tensor,
    mask: torch.Tensor,
    n0: torch.Tensor,
    t: int,
    steps: int,
    schedule: Callable,
    temperature: float,
    mask_id: int,
    generator: Optional[torch.Generator] = None,
    *,
    fill_all: bool = False,
):
    """Step t of T: (next tokens (B, N), next mask (B, N) bool, True = still masked).

    ``logits`` (B, N, K) are the model's output for ``current`` (B, N), which holds ``mask_id``
    where ``mask`` is True; ``n0`` (B,) counts the unknowns at the start; ``schedule`` is γ, e.g.
    ``gamma("cosine")``. ``fill_all`` fills every masked token now, whatever γ says (the last
    step taken when decoding stops at a sweet spot). Sampling, noise and ranking run on the CPU,
    so a CPU ``generator`` gives the same draws whatever the device; the results come back on
    ``current``'s device.
    """
    B, N, K = logits.shape
    device = current.device
    log_probs = logits.float().log_softmax(dim=-1).cpu()  # (B, N, K)
    sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)
    confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)  # (B, N) log p(sample)
    confidence = confidence + annealed_temperature(temperature, t, steps) * gumbel_noise((B, N), generator)
    # Only tokens masked right now compete; known and already decoded ones never return.
    confidence = confidence.masked_fill(~mask.cpu(), float("inf"))
    filled = torch.where(mask, sampled.to(device), current)
    n0 = n0.cpu()  # the counts meet the ranks on the CPU
    n_masked = torch.zeros_like(n0) if fill_all else masked_after_step(schedule, t, steps, n0)  # (B,)
    ranks = confidence.argsort(dim=1).argsort(dim=1)  # (B, N), 0 = least confident
    new_mask = (ranks < n_masked.unsqueeze(1)).to(device)
    return filled.masked_fill(new_mask, mask_id), new_mask


def _check_inputs(model, tokens, token_mask, settings):
    if not isinstance(settings, DecodeSettings):
        raise TypeError(f"settings must be a DecodeSettings, e.g. DecodeSettings(steps=12), got {type(settings).__name__}")
    if tokens.dim() != 2 or token_mask.shape != tokens.shape:
        raise ValueError(
            f"tokens and token_mask must both be (B, N); got {tuple(tokens.shape)} and "
            f"{tuple(token_mask.shape)} — build the mask with inpaint.token_mask_from_pixels"
        )
    if token_mask.dtype != torch.bool:
        raise TypeError(f"token_mask must be bool (True = unknown), got {token_mask.dtype}")
    known = tokens[~token_mask]
    if known.numel() and (known.min() < 0 or known.max() >= model.mask_id):
        raise ValueError(f"known tokens must be codebook indices in [0, {model.mask_id})")


@torch.no_grad()
def iterative_decode(
    model,
    tokens: torch.Tensor,
    token_mask: torch.Tensor,
    settings: DecodeSettings = DecodeSettings(),
    generator: Optional[torch.Generator] = None,
    return_history: bool = False,
    step: Callable = decode_step,
    labels: Optional[torch.Tensor] = None,
):
    """Fill the True positions of ``token_mask`` in ``tokens`` (B, N) as ``settings`` say.

    A sweet spot k stops after k of the T steps (the lab's partial decoding) and fills the
    still-masked tokens with that step's samples. ``step`` is called as ``decode_step`` is
    (a student's step, for grading). ``labels`` (B,) are class ids for a conditional model,
    guided by ``settings.guidance``; None decodes without a label. Returns (B, N) codes, and
    the ``DecodeHistory`` too when ``return_history``.
    """
    _check_inputs(model, tokens, token_mask, settings)
    if labels is not None:
        model.check_labels(labels, tokens.shape[0])
    steps, temperature = settings.steps, settings.temperature
    gamma_fn = gamma(settings.schedule)
    was_training = model.training
    model.eval()
    mask = token_mask.clone()
    n0 = mask.sum(dim=1).cpu()  # (B,) unknowns at the start: every count derives from these
    current = tokens.masked_fill(mask, model.mask_id)
    history = DecodeHistory()
    last_step = steps if settings.sweet_spot is None else settings.sweet_spot
    for t in range(last_step):
        logits = guided_logits(model, current, labels, settings.guidance) / settings.sample_temperature_at(t)  # (B, N, K)
        # The last step taken (the T-th, or the sweet spot) fills everything still masked.
        current, mask = step(logits, current, mask, n0, t, steps, gamma_fn, temperature, model.mask_id, generator,
                             fill_all=t == last_step - 1)
        if return_history:
            history.tokens.append(current.clone())
            history.masks.append(mask.clone())
            history.num_masked.append(mask.sum(dim=1).cpu())
    model.train(was_training)
    return (current, history) if return_history else current
