"""Speed benchmarks, reported as ratios of two timings taken in the same run.

- decode: batched ``iterative_decode`` over the test set's token masks vs. the same images
  decoded one at a time (target: batched ≥ 20× faster);
- attention: the hand-built ``MultiHeadAttention`` vs. the same projections around
  ``torch.nn.functional.scaled_dot_product_attention``, forward + backward
  (target: hand-built ≤ 1.5× slower).
- train: MVTM training throughput (images/s) of a named config, plain fp32 with the
  hand-built attention vs. bf16 autocast with the fused kernel (the lab-size GPU setting);
  then, on a machine without CUDA, one CPU process vs. two gloo processes under DDP sharing
  the same global batch.
- evaluate: the whole test set inpainted (default schedule) and its Inception features,
  i.e. the time one FID row costs, split into its two parts.
Each line names both sides of its ratio and, where there is a target, says "met" or "not met".
Absolute times depend on the machine; the ratios are what to compare.
"""

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import distributed as dist
from torch import multiprocessing as mp
from torch.nn import functional as F

from maskgit_lab.attention import MultiHeadAttention
from maskgit_lab.configs import get_config
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import DecodeSettings, iterative_decode
from maskgit_lab.distributed import DataParallelModel, finish, free_port
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.mvtm import training_mask
from maskgit_lab.train import MVTMTrainConfig, accumulate_gradients
from maskgit_lab.transformer import BidirectionalTransformer, TransformerConfig
from maskgit_lab.utils import default_device

QUICK_TRANSFORMER = TransformerConfig(num_codes=16, num_tokens=64, dim=32, depth=2, num_heads=4, hidden_dim=64)


def best_time(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs after one warm-up: the least disturbed measurement."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def result(name: str, slow: tuple, fast: tuple, unit: str, at_least: float | None = None, at_most: float | None = None,
           note: str = "") -> dict:
    """One benchmark's row: ``slow`` and ``fast`` are (side, time); the ratio is slow / fast.

    ``at_least`` / ``at_most`` is the target on that ratio; ``met`` is None when there is none
    (``note`` says why).
    """
    (slow_side, t_slow), (fast_side, t_fast) = slow, fast
    ratio = t_slow / t_fast
    if at_least is not None:
        target, met = f"{fast_side} ≥ {at_least:g}× faster than {slow_side}", ratio >= at_least
    elif at_most is not None:
        target, met = f"{slow_side} ≤ {at_most:g}× slower than {fast_side}", ratio <= at_most
    else:
        target, met = note, None
    return {"name": name, "slow_side": slow_side, "fast_side": fast_side, "slow": t_slow, "fast": t_fast, "unit": unit,
            "ratio": ratio, "target": target, "met": met}


def report(r: dict) -> str:
    """One line that names both sides of the ratio and says whether its target was met."""
    target = r["target"] if r["met"] is None else f"target: {r['target']}: {'met' if r['met'] else 'not met'}"
    return (f"{r['name']}: {r['slow_side']} {r['slow']:.3f} {r['unit']}, {r['fast_side']} {r['fast']:.3f} {r['unit']} "
            f"→ ratio {r['slow_side']} / {r['fast_side']} = {r['ratio']:.2f} ({target})")


def token_masks_of_test_set(downsample: int, root=DEFAULT_ROOT, limit=None) -> torch.Tensor:
    """The test holes as token masks of a tokenizer with ``downsample``-pixel patches."""
    return token_mask_from_pixels(load_test_batch(root, limit)["known"], downsample)


def bench_decode(quick: bool = False, settings: DecodeSettings = DecodeSettings()) -> dict:
    default = get_config("default")
    cfg = default.transformer
    model = BidirectionalTransformer(cfg).eval()
    token_mask = token_masks_of_test_set(default.vq.downsample, limit=16 if quick else None)
    tokens = torch.randint(cfg.num_codes, token_mask.shape, generator=torch.Generator().manual_seed(0))

    def batched():
        iterative_decode(model, tokens, token_mask, settings, generator=torch.Generator().manual_seed(0))

    def one_by_one():
        generator = torch.Generator().manual_seed(0)
        for i in range(tokens.shape[0]):
            iterative_decode(model, tokens[i : i + 1], token_mask[i : i + 1], settings, generator=generator)

    t_batched, t_loop = best_time(batched, 1), best_time(one_by_one, 1)
    return result(f"decode {tokens.shape[0]} test images, {settings.label}", ("one image at a time", t_loop),
                  ("batched", t_batched), "s", at_least=20)


def bench_attention(quick: bool = False) -> dict:
    B, N, D, H = (8, 64, 64, 4) if quick else (64, 64, 256, 8)
    hand = MultiHeadAttention(D, H)
    x = torch.randn(B, N, D, requires_grad=True)

    def fused_forward(inp):
        q, k, v = (hand.split_heads(proj(inp)) for proj in (hand.q_proj, hand.k_proj, hand.v_proj))
        return hand.out_proj(hand.merge_heads(F.scaled_dot_product_attention(q, k, v)))

    def run(forward):
        def step():
            forward(x).sum().backward()
        return step

    t_hand, t_sdpa = best_time(run(hand)), best_time(run(fused_forward))
    return result(f"attention fwd+bwd B={B} N={N} D={D} H={H}", ("hand-built", t_hand), ("SDPA", t_sdpa), "s",
                  at_most=1.5)


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(quick: bool = False, config: str = "default", batch_size: int = 32, steps: int = 3) -> dict:
    """Images/s of MVTM training steps: fp32 + hand-built attention vs. bf16 + fused attention."""
    device = default_device()
    cfg = QUICK_TRANSFORMER if quick else get_config(config).transformer
    batch_size, steps = (4, 1) if quick else (batch_size, steps)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(cfg.num_codes, (batch_size, cfg.num_tokens), generator=generator).to(device)
    mask = training_mask(batch_size, cfg.num_tokens, "cosine", generator).to(device)
    rates = {}
    for name, fast in (("fp32 hand-built", False), ("bf16 fused", True)):
        model = BidirectionalTransformer(cfg).to(device).use_fused_attention(fast)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        tcfg = dataclasses.replace(MVTMTrainConfig(), batch_size=batch_size, amp=fast)

        def train_steps():
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                accumulate_gradients(model, tokens, mask, tcfg)
                opt.step()
            _sync(device)

        rates[name] = batch_size * steps / best_time(train_steps, 1)
    label = "quick" if quick else config
    return result(f"train MVTM ({label} config, N={cfg.num_tokens}, D={cfg.dim}, depth {cfg.depth}, batch {batch_size}, "
                  f"{device.type}); images/s {rates['fp32 hand-built']:.1f} vs {rates['bf16 fused']:.1f}",
                  ("fp32 hand-built", 1 / rates["fp32 hand-built"]), ("bf16 fused", 1 / rates["bf16 fused"]),
                  "s per image", note="no target: the GPU figure is in the README")


def _cpu_train_rate(model, cfg: TransformerConfig, batch_size: int, steps: int, rank: int = 0, size: int = 1) -> float:
    """Images/s of MVTM steps on this process's rows of a global batch (all of it when ``size`` is 1)."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(cfg.num_codes, (batch_size, cfg.num_tokens), generator=generator)
    mask = training_mask(batch_size, cfg.num_tokens, "cosine", generator)
    rows = slice(rank * batch_size // size, (rank + 1) * batch_size // size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tcfg = dataclasses.replace(MVTMTrainConfig(), batch_size=batch_size)

    def train_steps():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            accumulate_gradients(model, tokens[rows], mask[rows], tcfg, mask.sum() / size)
            opt.step()

    return batch_size * steps / best_time(train_steps, 1)


def _cpu_train_rank(rank: int, size: int, port: int, cfg: TransformerConfig, batch_size: int, steps: int,
                    threads: int, out: Path):
    """One of ``size`` spawned gloo processes; rank 0 writes the images/s of the whole global batch."""
    torch.set_num_threads(threads)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # the hostname need not resolve
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    torch.manual_seed(0)
    rate = _cpu_train_rate(DataParallelModel(BidirectionalTransformer(cfg)), cfg, batch_size, steps, rank, size)
    if rank == 0:
        out.write_text(str(rate))
    finish()  # a barrier first: neither process tears down gloo while the other may still be inside a collective


def bench_train_processes(quick: bool = False, config: str = "default", batch_size: int = 32, steps: int = 3) -> dict:
    """Images/s of MVTM training on the CPU: this process alone vs. two DDP processes (gloo), same global batch.

    Each of the two processes gets half of this process's threads; their start-up (imports, the
    rendezvous, the DDP wrap) is not timed, only steps after a warm-up, as for one process.
    """
    cfg = QUICK_TRANSFORMER if quick else get_config(config).transformer
    batch_size, steps = (4, 1) if quick else (batch_size, steps)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    one = _cpu_train_rate(BidirectionalTransformer(cfg), cfg, batch_size, steps)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate"
        mp.start_processes(_cpu_train_rank, args=(2, free_port(), cfg, batch_size, steps, max(1, threads // 2), out),
                           nprocs=2, start_method="spawn")
        two = float(out.read_text())
    label = "quick" if quick else config
    return result(f"train MVTM on CPU processes ({label} config, global batch {batch_size}, threads per process "
                  f"{threads} vs {max(1, threads // 2)}); images/s {one:.1f} in 1 process vs {two:.1f} in 2 DDP processes",
                  ("1 process", 1 / one), ("2 DDP processes", 1 / two), "s per image",
                  note="no target: above 1 only with a core to spare (README)")


def bench_evaluate(quick: bool = False, vq=None, mvtm=None) -> dict:
    """Seconds to inpaint the test set (the default ``DecodeSettings``) and to extract its Inception features."""
    from maskgit_lab.checkpoint import SHIPPED_MVTM, SHIPPED_VQ, load_pair
    from maskgit_lab.evaluate import inpaint_batched
    from maskgit_lab.fid import inception_features, load_extractor

    tokenizer, model = load_pair(vq or SHIPPED_VQ, mvtm or SHIPPED_MVTM, device=default_device())
    test = load_test_batch(DEFAULT_ROOT, limit=8 if quick else None)
    extractor = load_extractor()
    start = time.perf_counter()
    images = inpaint_batched(tokenizer, model, test["masked"], test["known"], progress=False)
    _sync(model.pos_emb.device)
    decode = time.perf_counter() - start
    start = time.perf_counter()
    inception_features(images, progress=False, extractor=extractor)
    features = time.perf_counter() - start
    return result(f"evaluate {len(images)} test images, one FID row's cost", ("Inception features", features),
                  ("decode", decode), "s", note="no target: the Inception share of one FID row")


BENCHMARKS = {"decode": bench_decode, "attention": bench_attention, "train": bench_train, "evaluate": bench_evaluate}


def run_benchmarks(which=("decode", "attention"), quick: bool = False, config: str = "default") -> list:
    results = []
    for name in which:
        if name == "train":
            results.append(bench_train(quick=quick, config=config))
            if default_device().type == "cpu":  # where CPU processes are what a run would use
                results.append(bench_train_processes(quick=quick, config=config))
        else:
            results.append(BENCHMARKS[name](quick=quick))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for r in results:
        print(report(r))
    return results
