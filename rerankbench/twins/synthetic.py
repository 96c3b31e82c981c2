"""The generative model behind the synthetic twins (spec/datasets.md, "Twins").

Each image of identity i, seen by camera c from view v, gets the feature

    x = h * [sqrt(1 - r) mu_i + sqrt(r) nu_{i,v}] + s_c kappa_c + s_n exp(q z) eps
        + s_w w_v + s_m m + s_d d,                                then L2-normalised,

with mu_i = sqrt(g) * gamma_{group(i)} + sqrt(1 - g) * u_i the identity centre and every base
vector drawn from N(0, I/D) (unit norm in expectation). What each term stands for in real data:

- gamma, g: look-alike groups -- similar clothing, the same car model and colour; identities of
  one group share gamma, so their centres have cosine ~g. With `group_spread` > 0 each group
  has its own g = sigmoid(logit(g) + group_spread * z_group): some models are near-twins.
- u_i: what sets identity i apart. Isotropic in D dimensions by default; with `identity_rank`
  = R > 0 it lies in one R-dimensional subspace shared by every identity (and every split:
  the backbone's embedding spans few directions that separate people or vehicles), so the
  nearest other identities come close, as in trained embeddings.
- nu_{i,v}: the identity seen from view v (front / back / side, pose): one of `views` vectors
  of its own; one camera sees an identity from one view. Viewpoints are continuous in real
  data: with `view_blend` = b > 0 each image turns a fraction f = b u (u ~ U(0, 1)) of the way
  to the next view, nu = cos(pi f / 2) nu_{i,v} + sin(pi f / 2) nu_{i,v+1} (w_v likewise), so
  an identity's images chain from one view to the next instead of falling into separate sets.
- how many images: each identity gets one image and a share of the rest; the shares are even by
  default and, with `count_spread` = sigma > 0, log-normal weights exp(sigma z) per identity:
  real splits are long-tailed, a few identities filmed often and many seldom (VERI-Wild,
  MSMT17), so a probe's true matches number from one to several times k1 = N/C.
- which cameras: each identity is filmed by `cameras_per_identity` of the split's cameras (its
  images go round them), and each camera sees it from one view. A VeRi-776 vehicle passes 2 to
  18 of 20 cameras (Liu et al., ICME 2016), so some camera usually shares the probe's view (an
  easy first match) while others see the opposite side (the hard ones that cap the mAP).
- kappa_c: a camera's scene, background and illumination, shared by everyone it films. A test
  set without camera ids (VehicleID) can have `scenes` latent ones: each identity is filmed in
  one scene (hashed from it), never exported as a camera.
- w_v: the view itself (`shared_view`), one vector per view index shared by every identity:
  images taken from the same side look alike whoever is in them.
- m: the common mean of the embedding (`common`): features after ReLU and pooling share a
  direction, which lifts every cosine.
- h: image quality. A share `hard_share` of the images (occluded, blurred, low resolution)
  keep only `hard_signal` of their identity signal (h = hard_signal, else 1), so they drift
  toward the common mean and the nuisance, and near each other.
- eps: image noise whose scale varies per image (z ~ N(0, 1): some images are much harder).
- d: nuisance that identities share, continuous and low-rank (`nuisance`, `nuisance_rank` = K):
  d = a B, a ~ N(0, I/K) per image, B a K x D dictionary shared by every split -- pose,
  illumination, occlusion, background clutter, resolution, each image a mix of them. Unlike
  eps, isotropic in D dimensions, it is shared: an image's nearest false matches are the
  images whose nuisance is like its own, so expanding a probe pulls it toward that nuisance.

Every term is off (zero) by default except the original ones, and each newer term draws from
its own seeded stream, so a model that leaves them off gives the same twin to the bit. The
train split uses the noise, view share and group similarity times `train_ease`: the backbone
was fitted to it, so it is easier (paper, Table VI).
Everything is drawn from torch generators seeded per (seed, split, identity block), so a twin
is identical on every machine and however it is chunked.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..runtime.progress import progress

IDENTITY_BLOCK = 256


@dataclass(frozen=True)
class SplitCounts:
    """Identities, images and cameras of one split (paper, Table I); cameras = 0: none."""

    ids: int
    images: int
    cameras: int = 0

    def scaled(self, scale: float) -> "SplitCounts":
        ids = max(2, round(self.ids * scale))
        return SplitCounts(ids, max(ids, round(self.images * scale)), self.cameras)


@dataclass(frozen=True)
class TwinModel:
    """Parameters of the generative model; `noise` and `view_share` are calibrated per dataset.

    `train_ease` scales the nuisance terms (noise, view share, group similarity, shared nuisance) of the train
    split: the backbone was trained on it, so it ranks it far better (paper, Table VI)."""

    def for_train(self) -> "TwinModel":
        t = self.train_ease
        return dataclasses.replace(self, noise=self.noise * t, view_share=self.view_share * t,
                                   group_similarity=self.group_similarity * t, nuisance=self.nuisance * t)

    def __post_init__(self):
        if IDENTITY_BLOCK % self.group_size:  # a look-alike group lies in one identity block
            raise ValueError(f"group_size must divide {IDENTITY_BLOCK}, got {self.group_size}")

    noise: float
    view_share: float
    quality_spread: float = 0.3
    views: int = 4
    group_similarity: float = 0.6
    group_size: int = 8
    camera_shift: float = 0.2
    train_ease: float = 0.5
    group_spread: float = 0.0
    identity_rank: int = 0
    scenes: int = 0
    shared_view: float = 0.0
    view_blend: float = 0.0
    common: float = 0.0
    hard_share: float = 0.0
    hard_signal: float = 1.0
    nuisance: float = 0.0
    nuisance_rank: int = 32
    cameras_per_identity: int = 3
    count_spread: float = 0.0


def layout(counts: SplitCounts, rng: np.random.Generator, camera_subset: int = 3,
           count_spread: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Identity index (0-based, sorted) and camera of every image of a split.

    Every identity gets at least one image; each identity is seen by a few cameras of the
    split, and its images go round them in turn, so it appears in each of them when it can.
    The images beyond one an identity are shared out evenly, or with log-normal weights
    exp(count_spread * z) when count_spread > 0 (drawn first, so 0 keeps the even layout to the bit).
    """
    shares = np.exp(count_spread * rng.standard_normal(counts.ids)) if count_spread else np.ones(counts.ids)
    extra = rng.multinomial(counts.images - counts.ids, shares / shares.sum())
    per_identity = 1 + extra
    identity = np.repeat(np.arange(counts.ids), per_identity)
    if counts.cameras == 0:
        return identity, np.full(len(identity), -1, dtype=np.int64)
    subsets = np.stack([rng.choice(counts.cameras, size=min(camera_subset, counts.cameras), replace=False)
                        for _ in range(counts.ids)])
    position = np.arange(len(identity)) - np.repeat(np.cumsum(per_identity) - per_identity, per_identity)
    camera = subsets[identity, (position + rng.integers(0, subsets.shape[1], counts.ids)[identity]) % subsets.shape[1]]
    return identity, camera.astype(np.int64)


def feature_parts(identity: np.ndarray, camera: np.ndarray, model: TwinModel, seed: int, tag: str, dim: int):
    """Yield (lo, hi, parts) per identity block: the unscaled terms of the model for images
    lo..hi -- "group" (gamma), "own" (u), "view" (nu), "camera" (kappa), "noise" (eps) and
    "quality" (z, one per image)."""
    num_ids = int(identity.max()) + 1
    base = _seed(seed, tag)
    groups = _normal(base, "groups", (num_ids // model.group_size + 1, dim))
    cameras = _normal(seed, "cameras", (max(int(camera.max()) + 1, 1), dim))
    starts = np.searchsorted(identity, np.arange(0, num_ids + IDENTITY_BLOCK, IDENTITY_BLOCK))
    for block, (lo, hi) in enumerate(zip(starts[:-1], starts[1:])):
        if lo == hi:
            continue
        rows = torch.as_tensor(identity[lo:hi] - block * IDENTITY_BLOCK)
        generator = _generator(base, f"block{block}")
        own = _draw(generator, (IDENTITY_BLOCK, dim))
        views = _draw(generator, (IDENTITY_BLOCK, model.views, dim))
        eps = _draw(generator, (hi - lo, dim))
        quality = torch.randn(hi - lo, 1, generator=generator)
        view = torch.randint(0, model.views, (hi - lo,), generator=generator)
        if camera[lo] >= 0:  # one camera sees an identity from one view
            view = torch.as_tensor(_mix(identity[lo:hi], camera[lo:hi]) % model.views)
        yield lo, hi, {
            "group": groups[torch.as_tensor(identity[lo:hi] // model.group_size)],
            "own": own[rows],
            "view": views[rows, view],
            "camera": cameras[torch.as_tensor(camera[lo:hi])] if camera[lo] >= 0 else _scenes(model, seed, identity[lo:hi], dim),
            "noise": eps,
            "quality": quality,
            **shared_parts(model, seed, base, block, identity[lo:hi], view, dim),
            **({"view_next": views[rows, (view + 1) % model.views]} if model.view_blend else {}),
        }


def _scenes(model: TwinModel, seed: int, identity: np.ndarray, dim: int) -> torch.Tensor:
    """kappa of each image's latent scene where the test set has no camera ids: one of
    `scenes` per identity (hashed from it); zeros with scenes = 0."""
    if not model.scenes:
        return torch.zeros(len(identity), dim)
    scene = _mix(identity, np.zeros_like(identity)) % model.scenes
    return _normal(seed, "scenes", (model.scenes, dim))[torch.as_tensor(scene)]


def shared_parts(model: TwinModel, seed: int, base: int, block: int, identity: np.ndarray, view: torch.Tensor,
                 dim: int) -> dict[str, torch.Tensor]:
    """The newer terms' unscaled draws for the images of identity block `block` (their identity
    and view indices), each from a stream of its own and made only where the model uses the
    term: "view_index" (v, always), "group_z" (the look-alike group's z), "hard_draw" (U(0, 1)
    per image, hard below hard_share; drawn for a whole block at least, so a short last block
    of distractors is a prefix of a full one), "shared_view" (w_v), "common" (m), "view_u"
    (U(0, 1) per image) and "shared_view_next" (w_{v+1}) for view_blend, "own_low" (u_i =
    W_i B, W_i ~ N(0, I/R) and the R x D basis B shared by every split) for identity_rank R, and
    "nuisance" (d = a B', a ~ N(0, I/K) per image, drawn for a whole block at least as
    "hard_draw", and the K x D dictionary B' shared by every split)."""
    n = len(identity)
    within = torch.as_tensor(identity % IDENTITY_BLOCK)
    parts = {"view_index": view}
    if model.group_spread:
        group_z = torch.randn(IDENTITY_BLOCK // model.group_size, generator=_generator(base, f"group-spread{block}"))
        parts["group_z"] = group_z[within // model.group_size].unsqueeze(1)
    if model.hard_share:
        parts["hard_draw"] = torch.rand(max(n, IDENTITY_BLOCK), 1, generator=_generator(base, f"hard{block}"))[:n]
    if model.shared_view:
        parts["shared_view"] = _normal(seed, "shared-views", (model.views, dim))[view]
    if model.common:
        parts["common"] = _normal(seed, "common", (1, dim)).expand(n, dim)
    if model.view_blend:
        parts["view_u"] = torch.rand(max(n, IDENTITY_BLOCK), 1, generator=_generator(base, f"view-blend{block}"))[:n]
    if model.view_blend and model.shared_view:
        parts["shared_view_next"] = _normal(seed, "shared-views", (model.views, dim))[(view + 1) % model.views]
    if model.identity_rank:
        weights = torch.randn(IDENTITY_BLOCK, model.identity_rank, generator=_generator(base, f"rank{block}"))
        basis = _normal(seed, "identity-basis", (model.identity_rank, dim))
        parts["own_low"] = (weights / model.identity_rank ** 0.5 @ basis)[within]
    if model.nuisance:
        rank = model.nuisance_rank
        loadings = torch.randn(max(n, IDENTITY_BLOCK), rank, generator=_generator(base, f"nuisance{block}"))[:n]
        parts["nuisance"] = loadings / rank ** 0.5 @ _normal(seed, "nuisance-basis", (rank, dim))
    return parts


def combine(parts: dict[str, torch.Tensor], model: TwinModel) -> torch.Tensor:
    """x = h [sqrt(1 - r) (sqrt(g) gamma + sqrt(1 - g) u) + sqrt(r) nu] + s_c kappa
    + s_n exp(q z) eps + s_w w_v + s_m m + s_d d, L2-normalised (r: the view share of the identity
    signal; the module's docstring says what each term is). Terms left at zero are skipped."""
    g = model.group_similarity
    if model.group_spread and 0 < g < 1:  # at 0 or 1 every group keeps it (the logit's limits)
        g = torch.sigmoid(math.log(g / (1 - g)) + model.group_spread * parts["group_z"])
    own = parts["own_low"] if model.identity_rank else parts["own"]
    rho = model.view_share
    view, shared_view = parts["view"], parts.get("shared_view")
    if model.view_blend:
        turn = math.pi / 2 * model.view_blend * parts["view_u"]
        view = torch.cos(turn) * view + torch.sin(turn) * parts["view_next"]
        if model.shared_view:
            shared_view = torch.cos(turn) * shared_view + torch.sin(turn) * parts["shared_view_next"]
    x = (1 - rho) ** 0.5 * (g ** 0.5 * parts["group"] + (1 - g) ** 0.5 * own) + rho ** 0.5 * view
    if model.hard_share:
        x = x * torch.where(parts["hard_draw"] < model.hard_share, model.hard_signal, 1.0)
    x += model.camera_shift * parts["camera"] + model.noise * torch.exp(model.quality_spread * parts["quality"]) * parts["noise"]
    if model.shared_view:
        x += model.shared_view * shared_view
    if model.common:
        x += model.common * parts["common"]
    if model.nuisance:
        x += model.nuisance * parts["nuisance"]
    return torch.nn.functional.normalize(x, dim=1)


@dataclass(frozen=True)
class Layout:
    """Who is in each image of a split: `ids` (1.., 0 for a distractor) and `cams` (-1: none),
    and the generator's pieces, (tag, identity index, camera) per run of rows, in row order."""

    ids: np.ndarray
    cams: np.ndarray
    pieces: tuple

    def parts(self, model: TwinModel, seed: int, dim: int):
        """Yield (lo, hi, parts) over all rows (see feature_parts)."""
        offset = 0
        for tag, identity, camera in self.pieces:
            for lo, hi, parts in feature_parts(identity, camera, model, seed, tag, dim):
                yield offset + lo, offset + hi, parts
            offset += len(identity)

    def features(self, model: TwinModel, seed: int, dim: int, show_progress: bool = False) -> np.ndarray:
        """Features (n x dim, float32, unit rows) of every image."""
        out = np.empty((len(self.ids), dim), dtype=np.float32)
        for lo, hi, parts in progress(self.parts(model, seed, dim), "twin", show_progress):
            out[lo:hi] = combine(parts, model).numpy()
        return out


def split_layout(counts: SplitCounts, seed: int, tag: str, distractors: int = 0,
                 cameras_per_identity: int = 3, count_spread: float = 0.0) -> Layout:
    """A split with identities labelled 1..ids, each seen by `cameras_per_identity` cameras, their
    images spread by `count_spread` (see `layout`); `distractors` extra images labelled 0, each of
    an identity seen nowhere else (Market-1501's distractors)."""
    rng = np.random.default_rng(_seed(seed, tag + "/layout"))
    identity, camera = layout(counts, rng, cameras_per_identity, count_spread)
    pieces, ids = [(tag, identity, camera)], [identity + 1]
    if distractors:
        lone_identity, lone_camera = layout(SplitCounts(distractors, distractors, counts.cameras), rng)
        pieces.append((tag + "/distractors", lone_identity, lone_camera))
        ids.append(np.zeros(distractors, np.int64))
    return Layout(np.concatenate(ids).astype(np.int64), np.concatenate([p[2] for p in pieces]), tuple(pieces))


def _mix(identity: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random function of (identity, camera)."""
    h = (identity.astype(np.uint64) * np.uint64(2654435761) + camera.astype(np.uint64) * np.uint64(40503))
    return ((h >> np.uint64(7)) ^ (h >> np.uint64(17))).astype(np.int64)


def _seed(seed: int, tag: str) -> int:
    return zlib.crc32(f"{seed}/{tag}".encode())


def _draw(generator: torch.Generator, shape) -> torch.Tensor:
    return torch.randn(shape, generator=generator) / shape[-1] ** 0.5


def _generator(seed: int, tag: str) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed, tag))


def _normal(seed: int, tag: str, shape) -> torch.Tensor:
    return _draw(_generator(seed, tag), shape)
