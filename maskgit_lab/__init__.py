"""maskgit-lab: MaskGIT for image inpainting, as a course.

Reference solutions, one idea per module: ``vq`` (stage 1, the tokenizer),
``attention`` / ``transformer`` / ``mvtm`` (stage 2, masked visual token modeling),
``schedules`` / ``masking`` / ``decoding`` (stage 3, iterative decoding) and
``inpaint`` (pixels in, pixels out). Chang et al., "MaskGIT: Masked Generative Image
Transformer", CVPR 2022.
"""

__version__ = "0.1.0"
