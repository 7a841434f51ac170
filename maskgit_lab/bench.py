"""Speed benchmarks, reported as ratios of two timings taken in the same run.

- decode: batched ``iterative_decode`` over the test set's token masks vs. the same images
  decoded one at a time (target: batched ≥ 20× faster);
- attention: the hand-built ``MultiHeadAttention`` vs. the same projections around
  ``torch.nn.functional.scaled_dot_product_attention``, forward + backward
  (target: hand-built ≤ 1.5× slower).
Absolute times depend on the machine; the ratios are what to compare.
"""

import time

import torch
from torch.nn import functional as F

from maskgit_lab.attention import MultiHeadAttention
from maskgit_lab.configs import get_config
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.decoding import iterative_decode
from maskgit_lab.evaluate import load_test_batch
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.transformer import BidirectionalTransformer


def best_time(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs after one warm-up: the least disturbed measurement."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def token_masks_of_test_set(root=DEFAULT_ROOT, limit=None, downsample: int = 8) -> torch.Tensor:
    return token_mask_from_pixels(load_test_batch(root, limit)["known"], downsample)


def bench_decode(quick: bool = False, steps: int = 8) -> dict:
    cfg = get_config("default").transformer
    model = BidirectionalTransformer(cfg).eval()
    token_mask = token_masks_of_test_set(limit=16 if quick else None)
    tokens = torch.randint(cfg.num_codes, token_mask.shape, generator=torch.Generator().manual_seed(0))

    def batched():
        iterative_decode(model, tokens, token_mask, steps, generator=torch.Generator().manual_seed(0))

    def one_by_one():
        generator = torch.Generator().manual_seed(0)
        for i in range(tokens.shape[0]):
            iterative_decode(model, tokens[i : i + 1], token_mask[i : i + 1], steps, generator=generator)

    t_batched, t_loop = best_time(batched, 1), best_time(one_by_one, 1)
    return {"name": f"decode {tokens.shape[0]} test images, T={steps}", "fast": t_batched, "slow": t_loop,
            "ratio": t_loop / t_batched, "target": "batched ≥ 20× faster than per-image"}


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
    return {"name": f"attention fwd+bwd B={B} N={N} D={D} H={H}", "fast": t_sdpa, "slow": t_hand,
            "ratio": t_hand / t_sdpa, "target": "hand-built ≤ 1.5× slower than SDPA"}


BENCHMARKS = {"decode": bench_decode, "attention": bench_attention}


def run_benchmarks(which=("decode", "attention"), quick: bool = False) -> list:
    results = [BENCHMARKS[name](quick=quick) for name in which]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for r in results:
        print(f"{r['name']}: {r['slow']:.3f} s vs {r['fast']:.3f} s → ratio {r['ratio']:.2f} ({r['target']})")
    return results
