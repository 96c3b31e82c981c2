"""Extra distractor images for a twin's gallery (`market1501_500k`, `--distractors N`).

Market-1501's released 500k distractor set (Zheng et al., ICCV 2015; used for k-reciprocal
re-ranking's large-gallery test, Zhong et al., CVPR 2017, Sec. 4.4) adds images of people and
false detections that belong to no test identity: identity 0, which the evaluation keeps in the
gallery as negatives (spec/evaluation.md). Here each distractor is one image of a lone identity
of the twin's generative model (synthetic.combine: its own centre in a look-alike group of
`group_size`, one view of its own and the shared view w_0, a camera of the twin's, image noise,
and the newer terms of synthetic.shared_parts), drawn from a torch generator seeded
by (seed, tag, block of 256): the same images however the set is chunked, generated and written
one block at a time (nothing but one block is held).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .synthetic import IDENTITY_BLOCK, TwinModel, _draw, _generator, _normal, _scenes, _seed, combine, shared_parts


def distractor_blocks(model: TwinModel, seed: int, tag: str, count: int, dim: int,
                      cameras: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(lo, hi, features, cameras) of distractors lo..hi, block by block (features unit rows,
    float32; cameras -1 where the twin has none)."""
    camera_shift = _normal(seed, "cameras", (max(cameras, 1), dim))
    base = _seed(seed, tag)
    for block, lo in enumerate(range(0, count, IDENTITY_BLOCK)):
        n = min(IDENTITY_BLOCK, count - lo)
        generator = _generator(base, f"block{block}")
        groups = _draw(generator, (IDENTITY_BLOCK // model.group_size + 1, dim))
        own = _draw(generator, (IDENTITY_BLOCK, dim))[:n]
        view = _draw(generator, (IDENTITY_BLOCK, dim))[:n]
        eps = _draw(generator, (IDENTITY_BLOCK, dim))[:n]
        quality = torch.randn(IDENTITY_BLOCK, 1, generator=generator)[:n]
        camera = torch.randint(0, max(cameras, 1), (IDENTITY_BLOCK,), generator=generator)[:n]
        identity = np.arange(lo, lo + n)
        parts = {"group": groups[torch.arange(n) // model.group_size], "own": own, "view": view,
                 "camera": camera_shift[camera] if cameras else _scenes(model, seed, identity, dim),
                 "noise": eps, "quality": quality,
                 **shared_parts(model, seed, base, block, identity, torch.zeros(n, dtype=torch.int64), dim)}
        if model.view_blend:  # a second view of each lone identity, from its own stream
            parts["view_next"] = _normal(base, f"view-next{block}", (IDENTITY_BLOCK, dim))[:n]
        yield lo, lo + n, combine(parts, model).numpy(), (camera.numpy() if cameras else np.full(n, -1)).astype(np.int64)
