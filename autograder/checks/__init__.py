"""Graded checks, one module per notebook topic: vq, attention, mvtm, decoding, inpainting."""
