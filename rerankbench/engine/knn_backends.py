"""kNN graph backends (`--knn exact|flat|ivf|hnsw`, `--knn-param NAME=VALUE`), recorded as `knn`.

- exact: neighbours.build_knn_graph, the reference and the default. `screen=bf16` finds the
  candidates with bf16 products and re-checks them in fp32 (screened_graph.py): the same graph,
  faster where bf16 products are (CUDA, AMX, AVX512-BF16: 0.54-0.59x on the full MSMT17 twin);
  `screen=fp32` (default) is the plain build. The graph is the same either way, so `screen` is
  not part of a cell's identity nor of the cache key.
- flat: faiss IndexFlatIP, exact brute force (faiss: "Faiss indexes", IndexFlat).
- ivf: faiss IndexIVFFlat (`kind=flat`) or IndexIVFPQ (`kind=pq`, `m` sub-quantizers of `nbits`),
  `nlist` inverted lists from k-means on a seeded sample, `nprobe` of them searched
  (Jegou et al., TPAMI 2011; faiss wiki "Guidelines to choose an index").
- hnsw: faiss IndexHNSWFlat, `M` links per node, `efConstruction`, `efSearch`
  (Malkov & Yashunin, TPAMI 2018).

Every backend returns a neighbours.KnnGraph with the exact graph's conventions: row i first, then
its neighbours by (similarity desc, index asc), each distance ||x_i - x_j|| recomputed in fp32
from the two rows (sqrt(2 - 2 s); ||x_i - x_j|| itself below CLOSE), so an approximate graph
differs from the exact one only in which neighbours it found. faiss returns K + 1 candidates
per row, so that row i's own entry may be dropped wherever it falls. farthest[i] comes from the
same index asked for the nearest row to -x_i (min_j x_i.x_j = -max_j (-x_i).x_j): exact with
flat, approximate with ivf and hnsw. faiss runs on the GPU (index_cpu_to_gpu) when the device
is cuda and faiss.get_num_gpus() > 0, on the CPU otherwise (faiss-cpu is what installs here).

An approximate graph's `knn_recall` is recall@K against the exact graph on a seeded sample of
`recall_rows` rows (default 2,000): their exact top K costs sample x T products, not T x T.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..runtime.progress import progress
from .neighbours import (CLOSE, KnnGraph, _exact_near, _stable_order, build_knn_graph, euclidean_from_similarity,
                         nearest_among)

SEARCH_ROWS = 16384  # rows searched per faiss call

# backend: {parameter: (default, parse)}; "auto" is resolved against the data (resolved_params)
PARAMS = {
    "exact": {"screen": ("fp32", str)},
    "flat": {},
    "ivf": {"kind": ("flat", str), "nlist": ("auto", int), "nprobe": (32, int), "m": (64, int), "nbits": (8, int),
            "train_rows": ("auto", int), "seed": (0, int), "recall_rows": (2000, int)},
    "hnsw": {"M": (32, int), "efConstruction": (80, int), "efSearch": (128, int), "recall_rows": (2000, int)},
}
CHOICES = {"screen": ("fp32", "bf16"), "kind": ("flat", "pq")}
BACKENDS = tuple(PARAMS)
EXACT = "exact"


@dataclass(frozen=True)
class KnnChoice:
    """A backend and the parameters set for it (`params`: NAME -> value, as given, checked)."""

    backend: str = EXACT
    params: dict = field(default_factory=dict)

    @property
    def approximate(self) -> bool:
        return self.backend in ("ivf", "hnsw")

    def resolved(self, total: int) -> dict:
        """Every parameter of the backend, defaults filled and "auto" resolved for T = `total` rows."""
        out = {name: self.params.get(name, default) for name, (default, _) in PARAMS[self.backend].items()}
        if self.backend == "ivf":
            if out["nlist"] == "auto":  # faiss's guideline: about 4 sqrt(T) lists
                out["nlist"] = int(max(1, min(total // 39, 4 * round(math.sqrt(total)))))
            if out["train_rows"] == "auto":
                out["train_rows"] = int(min(total, 64 * out["nlist"]))
        return out

    def describe(self, total: int) -> dict:
        """What a record keeps under `knn`: {"backend": ..., "params": {...}} (exact: its backend alone
        unless screen is set, which changes no graph)."""
        if self.backend == EXACT:
            return {"backend": EXACT}
        return {"backend": self.backend, "params": self.resolved(total)}

    def identity(self) -> dict | None:
        """What names the graph in a cell's key and the cache: None for exact (any screen), else the
        backend and the parameters as set."""
        return None if self.backend == EXACT else {"backend": self.backend, "params": dict(sorted(self.params.items()))}

    def check_gallery_context(self) -> None:
        """The gallery context builds the gallery's own exact graph: any other backend is refused."""
        if self.identity() is not None:
            raise ValueError(f"--knn {self.backend} builds one graph over X; the gallery context uses the exact "
                             f"graph only (--knn exact)")

    def build(self, features: torch.Tensor, k: int, show_progress: bool = False) -> tuple[KnnGraph, dict]:
        """The graph of the unit rows of `features` for k, and what to record (knn_recall for an
        approximate backend)."""
        total = len(features)
        params = self.resolved(total)
        if self.backend == EXACT:
            if params["screen"] == "bf16":
                from .screened_graph import build_screened_graph
                return build_screened_graph(features, k), {}
            return build_knn_graph(features, k, show_progress), {}
        graph = faiss_graph(features, k, self.backend, params, show_progress)
        if not self.approximate:
            return graph, {}
        return graph, {"knn_recall": recall_at_k(features, graph, params["recall_rows"])}


def parse_knn(backend: str | None, settings: list[str] | dict | None = None) -> KnnChoice:
    """A KnnChoice from `--knn` and its `--knn-param NAME=VALUE` settings (or a dict), checked:
    a ValueError of one line naming an unknown backend, parameter or a bad value."""
    backend = backend or EXACT
    if backend not in PARAMS:
        raise ValueError(f"unknown kNN backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if isinstance(settings, dict):
        pairs = list(settings.items())
    else:
        pairs = []
        for text in settings or []:
            name, equals, value = str(text).partition("=")
            if not equals or not name.strip():
                raise ValueError(f"--knn-param takes NAME=VALUE, got {text!r}")
            pairs.append((name.strip(), value.strip()))
    known = PARAMS[backend]
    params = {}
    for name, value in pairs:
        if name not in known:
            raise ValueError(f"kNN backend {backend!r} has no parameter {name!r} (its parameters: "
                             f"{', '.join(known) or 'none'})")
        default, kind = known[name]
        if name in CHOICES:
            if str(value) not in CHOICES[name]:
                raise ValueError(f"--knn-param {name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
            params[name] = str(value)
            continue
        try:
            number = int(str(value))
        except ValueError:
            raise ValueError(f"--knn-param {name} must be a whole number, got {value!r}") from None
        if number < (0 if name == "seed" else 1):
            raise ValueError(f"--knn-param {name} must be {'>= 0' if name == 'seed' else 'at least 1'}, got {number}")
        params[name] = number
    return KnnChoice(backend, params)


def faiss_gpus() -> int:
    """The GPUs faiss can use (0 with faiss-cpu, whose builds may lack get_num_gpus)."""
    import faiss
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def faiss_index(features: np.ndarray, backend: str, params: dict, device: torch.device):
    """The faiss index of the unit rows `features` (T x D float32), trained and filled."""
    import faiss
    dim = features.shape[1]
    if backend == "flat":
        index = faiss.IndexFlatIP(dim)
    elif backend == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
    else:
        quantizer = faiss.IndexFlatIP(dim)
        if params["kind"] == "pq":
            if dim % params["m"]:
                raise ValueError(f"--knn-param m = {params['m']} must divide the feature dimension {dim}")
            index = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["m"], params["nbits"],
                                     faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = params["seed"]
    if device.type == "cuda" and faiss_gpus() > 0 and backend != "hnsw":  # faiss has no GPU HNSW
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), torch.cuda.current_device() or 0, index)
    if not index.is_trained:
        sample = np.random.default_rng(params["seed"]).choice(len(features), params["train_rows"], replace=False)
        index.train(features[np.sort(sample)])
    index.add(features)
    if backend == "ivf":
        index.nprobe = params["nprobe"]
    if backend == "hnsw":
        index.hnsw.efSearch = params["efSearch"]
    return index


def faiss_graph(features: torch.Tensor, k: int, backend: str, params: dict, show_progress: bool = False) -> KnnGraph:
    """The kNN graph of X found by a faiss index, in the exact graph's conventions (module docstring)."""
    import faiss
    faiss.omp_set_num_threads(torch.get_num_threads())
    total, device = len(features), features.device
    k = min(k, total)
    x = np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)
    index = faiss_index(x, backend, params, device)
    found = np.empty((total, min(k + 1, total)), dtype=np.int64)
    lowest = np.empty(total, dtype=np.float32)
    for lo in progress(range(0, total, SEARCH_ROWS), f"kNN graph ({backend})", show_progress):
        block = x[lo:lo + SEARCH_ROWS]
        found[lo:lo + len(block)] = index.search(block, found.shape[1])[1]
        lowest[lo:lo + len(block)] = -index.search(-block, 1)[0][:, 0]
    del index
    rows = torch.arange(total, device=device)
    values, candidates = ordered_neighbours(features, rows, torch.as_tensor(found, device=device), k)
    missing = candidates < 0  # faiss found fewer than K (an IVF with too few lists probed)
    if missing.any():
        raise ValueError(f"the {backend} index found fewer than {k} neighbours for {int(missing.any(1).sum())} rows; "
                         f"raise nprobe (or efSearch)")
    close = values > 1.0 - CLOSE**2 / 2
    close[:, 0] = False
    distance = _exact_near(values, close, features, rows, candidates)
    farthest = euclidean_from_similarity(torch.from_numpy(lowest)).numpy()
    return KnnGraph(candidates.cpu().numpy(), distance.cpu().numpy(), farthest)


def ordered_neighbours(features: torch.Tensor, rows: torch.Tensor, found: torch.Tensor, k: int) -> tuple:
    """(similarities, columns) of `rows`' first k neighbours from the K + 1 candidates faiss `found`
    for them (-1 where it found none), in the exact graph's conventions: the row itself first, then
    the others by (fp32 similarity desc, index asc); a column of -1 stays where too few were found."""
    found = torch.where(found == rows[:, None], -1, found)  # itself: put first below
    s = torch.where(found < 0, -math.inf, _row_products(features, rows, found))
    values, candidates = _stable_order(s, found)
    values = torch.cat([torch.ones(len(rows), 1, device=features.device), values[:, :k - 1]], 1)
    return values, torch.cat([rows[:, None], candidates[:, :k - 1]], 1)


def _row_products(features: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, piece: int = 4096) -> torch.Tensor:
    """x_rows[i] . x_columns[i, j] in fp32 for every i (a column of -1 gives 0)."""
    out = torch.zeros(columns.shape, dtype=features.dtype, device=features.device)
    for lo in range(0, len(columns), piece):
        cols = columns[lo:lo + piece]
        out[lo:lo + piece] = torch.einsum("bd,bkd->bk", features[rows[lo:lo + piece]], features[cols.clamp(min=0)])
    return out


def recall_rows(total: int, sample_rows: int, seed: int = 0) -> np.ndarray:
    """The seeded sample of rows (sorted) that recall@K is measured on."""
    return np.sort(np.random.default_rng(seed).choice(total, min(sample_rows, total), replace=False))


def recall_at_k(features: torch.Tensor, graph: KnnGraph, sample_rows: int, seed: int = 0) -> float:
    """recall@K = mean over a seeded sample of rows of |approx kNN(i, K) & exact kNN(i, K)| / K."""
    rows = recall_rows(len(features), sample_rows, seed)
    exact, _, _ = nearest_among(features, rows, np.arange(len(features)), graph.k)
    return overlap(graph.indices[rows], exact)


def overlap(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |found row & exact row| / K (K = exact's width)."""
    return float(np.mean([len(np.intersect1d(f, e)) for f, e in zip(found, exact)]) / exact.shape[1])
