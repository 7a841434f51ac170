"""Graded checks, one module per notebook topic: vq, attention, mvtm, decoding, inpainting, generation.

``common.py`` holds what they share. Every ``check_*`` function of these modules is a visible
check (:func:`visible_checks` finds them); ``reference_twins`` names the answer
each one is measured against when the grader itself is tested or timed.
"""

import importlib
import pkgutil


def visible_checks() -> dict:
    """Every graded check (each ``check_*`` in these modules) by name; the judge takes them before any student code runs."""
    checks = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("check_") and callable(value) and hasattr(value, "points"):
                checks[name] = value
    return checks


def reference_twins() -> dict:
    """Each visible check's name → the package's reference for the function it grades."""
    from autograder.checks.attention import by_hand
    from maskgit_lab import attention, decoding, generate, inpaint, masking, mvtm, schedules, vq

    return {
        "check_nearest_code": vq.nearest_code,
        "check_straight_through": vq.straight_through,
        "check_vq_losses": vq.vq_loss,
        "check_scaled_dot_product_attention": attention.scaled_dot_product_attention,
        "check_split_heads": attention.split_heads,
        "check_merge_heads": attention.merge_heads,
        "check_multi_head_attention": by_hand,  # the layer's maths on given weights, with every mistake switched off
        "check_gamma_endpoints": schedules.gamma,
        "check_gamma_laws": schedules.gamma,
        "check_mask_counts": masking.random_token_mask,
        "check_mask_randomness": masking.random_token_mask,
        "check_masked_token_loss": mvtm.masked_token_loss,
        "check_label_smoothing": mvtm.masked_token_loss,
        "check_gumbel_noise": decoding.gumbel_noise,
        "check_annealed_temperature": decoding.annealed_temperature,
        "check_masked_after_step": decoding.masked_after_step,
        "check_decode_step_keeps_decided": decoding.decode_step,
        "check_decode_step_counts": decoding.decode_step,
        "check_decode_step_noise": decoding.decode_step,
        "check_decode_step": decoding.decode_step,
        "check_token_mask_from_pixels": inpaint.token_mask_from_pixels,
        "check_paste_known": inpaint.paste_known,
        "check_drop_labels": mvtm.drop_labels,
        "check_guided_logits": decoding.guided_logits,
        "check_guidance_one_pass": decoding.guided_logits,
        "check_generate_codes": generate.generate_codes,
    }
