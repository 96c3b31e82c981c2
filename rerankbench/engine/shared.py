"""The shared steps: parameter-independent work on one feature set, done once.

Every method and every parameter value of a sweep reuses: the L2-normalised X = [Q; G] on
the chosen device, the exact kNN graph over X (neighbours.py) and the distances between
every candidate query row and gallery row (features.trials.candidate_rows). Each step is timed
apart (`timings`) and, given a cache folder, written to disk so that later runs and other
processes load it instead of computing it again. A method that re-ranks derived features
(alpha-QE + k-reciprocal works on alpha-QE-expanded X) gets the same steps over them from
`derived`, built once per label and reported in the summary under that label. A learned
method (ACP) keeps its trained model here too (`learned`), so that the cells of a sweep share it.

The gallery context (--context gallery, contexts.py) re-ranks each query against a gallery
alone: `gallery_context(rows)` gives the shared steps of one gallery -- the same X and
query-gallery distances, the gallery's own kNN graph (neighbours.build_gallery_graph) -- made
once per gallery (VehicleID: one per draw), cached under `gallery-<digest>/` and reported in
the summary under that label; their derived steps are the gallery context's too.

The kNN graph comes from the backend `knn` (knn_backends.py: exact by default, or faiss's flat,
ivf, hnsw); an approximate graph is cached under `graph-<backend>-<digest of its parameters>/`
with its knn_recall, the exact one where it always was. With `whole_distances=False` (top-L
re-ranking, top_l.py: the M x N matrix would not fit) the query-gallery distances are never
stored: `query_gallery_distances()` computes them block by block from X.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..features.featureset import FeatureSet, unit_rows
from ..features.trials import candidate_rows
from ..runtime.device import resolve_device
from ..runtime.files import DamagedFile, discard, folder_lock, load_npy, load_npz, write_atomic, write_text_atomic
from ..runtime.progress import progress
from .distances import FeatureDistances, PrecomputedDistances, euclidean_blocks
from .knn_backends import KnnChoice
from .neighbours import KnnGraph, build_gallery_graph, build_knn_graph


class SharedSteps:
    def __init__(self, fs: FeatureSet, device: str = "cpu", cache_dir: str | Path | None = None,
                 show_progress: bool = False, gallery: np.ndarray | None = None, knn: KnnChoice | None = None,
                 whole_distances: bool = True):
        self.fs = fs
        self.knn = knn or KnnChoice()
        self.whole_distances = whole_distances  # False: top-L mode, distances from X block by block
        self.device = resolve_device(str(device))
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.folder = None if cache_dir is None else self.cache_dir / "shared" / f"{fs.name}-{fs.fingerprint}"
        self.show_progress = show_progress
        self.gallery = gallery  # the gallery context's gallery (rows of X, sorted), or None: X as a whole
        self.timings: dict[str, dict] = {}
        self._graph: KnnGraph | None = None
        self._distances: PrecomputedDistances | None = None
        self._distances_of: SharedSteps | None = None  # the steps whose distances these share (same X)
        self.root: SharedSteps = self  # the feature set's own steps, which keep the learned models
        self.children: dict[str, SharedSteps] = {}
        self.models: dict[str, object] = {}

    @cached_property
    def features(self) -> torch.Tensor:
        """X = [Q; G], rows L2-normalised, float32, on the device."""
        start = time.perf_counter()
        x = torch.from_numpy(self.fs.stacked()).to(self.device)
        unit_rows(x)  # in place: one copy of X
        self.timings["normalise"] = {"seconds": time.perf_counter() - start}
        return x

    @property
    def widest(self) -> int:
        """The most neighbours a row's list can hold: the rows of X, or of the gallery in its context."""
        return len(self.features) if self.gallery is None else len(self.gallery)

    def build(self, k: int, with_distances: bool) -> None:
        """Make or load the kNN graph for k (if k) and, if asked, the query-gallery distances;
        when both must be computed they come from one pass over X X^T."""
        k = min(k, self.widest)
        with_distances = with_distances and self.whole_distances
        if self._distances_of is not None and with_distances:
            self._distances = self._distances_of.query_gallery_distances()
        if not (k and not self._has_graph(k)) and not (with_distances and self._distances is None):
            return
        with self._lock():
            if k and not self._has_graph(k):
                self._graph = self._load_graph(k) or self._graph
            if with_distances and self._distances is None:
                self._distances = self._load_distances()
            if (k and not self._has_graph(k) and with_distances and self._distances is None and self.gallery is None
                    and self.knn.identity() is None and self.knn.resolved(1)["screen"] == "fp32"):
                def graph_and_distances(matrix, rows, columns):
                    self._graph = self._build_graph(k, keep=(rows, columns, matrix))
                    return {"seconds": 0.0, "with_knn_graph": True}
                self._compute_distances(graph_and_distances)
        if k:
            self.knn_graph(k)
        if with_distances:
            self.query_gallery_distances()

    def knn_graph(self, k: int) -> KnnGraph:
        """kNN(i, k) for every row i of X (self first); built once for the largest k asked. In the
        gallery context, the gallery's own graph (neighbours.build_gallery_graph)."""
        k = min(k, self.widest)
        if not self._has_graph(k):
            with self._lock():
                self._graph = self._load_graph(k) or self._graph
                if not self._has_graph(k):
                    self._graph = self._build_graph(k)
        return self._graph.truncated(k)

    def query_gallery_distances(self) -> PrecomputedDistances:
        """||x_q - x_g|| for every candidate query row q and gallery row g (a float32 array,
        memory-mapped from the cache when there is one); in top-L mode computed from X per block."""
        if not self.whole_distances:
            return FeatureDistances(self.features)
        if self._distances is None and self._distances_of is not None:
            self._distances = self._distances_of.query_gallery_distances()
        if self._distances is None:
            with self._lock():
                self._distances = self._load_distances()
                if self._distances is None:
                    self._compute_distances(self._product)
        return self._distances

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows that can be queries and those that can be in the gallery (features/trials.py);
        in the gallery context, every row outside the gallery and the gallery's rows."""
        if self.gallery is None:
            return candidate_rows(self.fs)
        return np.flatnonzero(self._outsiders()), self.gallery

    def _has_graph(self, k: int) -> bool:
        return self._graph is not None and self._graph.k >= k

    def _lock(self):
        """The lock of this feature set's cache folder, held while a step is loaded or made, so that
        a process that would make the same step waits and loads it instead (none without a cache)."""
        return nullcontext() if self.folder is None else folder_lock(self.folder)

    def _product(self, matrix: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> dict:
        start = time.perf_counter()
        for _ in progress(euclidean_blocks(self.features, rows, columns, out=matrix), "distances", self.show_progress):
            pass
        return {"seconds": time.perf_counter() - start}

    def _compute_distances(self, fill: Callable[[np.ndarray, np.ndarray, np.ndarray], dict]) -> None:
        """An M x N float32 array filled by `fill(matrix, rows, columns)` (which returns its timing):
        in memory, or written as a memory map under a temporary name and renamed into the cache."""
        rows, columns = self.candidates()
        shape = (len(rows), len(columns))
        if self.folder is None:
            matrix = np.empty(shape, dtype=np.float32)
            timing = fill(matrix, rows, columns)
        else:
            timing = {}

            def write(tmp: Path) -> None:
                matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
                timing.update(fill(matrix, rows, columns))
                matrix.flush()
                del matrix
            path = write_atomic(self.folder / "distances.npy", write)
            _write_json(path, timing)
            matrix = np.load(path, mmap_mode="r")
        self.timings["distances"] = {**timing, "cached": False}
        self._distances = PrecomputedDistances(matrix, rows, columns)

    def _load_distances(self) -> PrecomputedDistances | None:
        """The cached distances, checked (whole, M x N float32); a damaged file is reported and removed."""
        path = None if self.folder is None else self.folder / "distances.npy"
        if path is None or not path.exists():
            return None
        rows, columns = self.candidates()
        start = time.perf_counter()
        try:
            matrix = load_npy(path, (len(rows), len(columns)), np.float32, mmap=True)
        except DamagedFile as error:
            discard(path, error)
            return None
        self.timings["distances"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
        return PrecomputedDistances(matrix, rows, columns)

    @property
    def graph_folder(self) -> Path | None:
        """Where this backend's graphs are cached: the steps' folder for the exact graph, else
        graph-<backend>-<digest of the parameters set>/ in it."""
        identity = self.knn.identity()
        if self.folder is None or identity is None:
            return self.folder
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        return self.folder / f"graph-{identity['backend']}-{digest}"

    def has_cached_graph(self, k: int) -> bool:
        """Whether a graph of k neighbours or more is here or in the cache (then loaded)."""
        if not self._has_graph(k):
            self._graph = self._load_graph(k) or self._graph
        return self._has_graph(k)

    def store_graph(self, graph: KnnGraph, timing: dict) -> None:
        """Keep a graph made elsewhere (the Ray executor's shards) as this backend's graph for its k."""
        self.timings["knn_graph"] = {**timing, "k": graph.k, "cached": False}
        self._graph = graph
        if self.graph_folder is not None:
            path = write_atomic(self.graph_folder / f"knn-{graph.k}.npz", lambda tmp: np.savez(
                tmp, indices=graph.indices, distances=graph.distances, farthest=graph.farthest))
            _write_json(path, self.timings["knn_graph"])

    def _build_graph(self, k: int, keep=None) -> KnnGraph:
        x = self.features
        start = time.perf_counter()
        found = {}
        if self.gallery is not None:
            self.knn.check_gallery_context()
            graph = build_gallery_graph(x, self.gallery, k, self.show_progress)
        elif keep is not None:
            graph = build_knn_graph(x, k, self.show_progress, keep)
        else:
            graph, found = self.knn.build(x, k, self.show_progress)
        timing = {"seconds": time.perf_counter() - start, "backend": self.knn.backend, **found}
        if keep is not None:
            timing["with_distances"] = True
        self.store_graph(graph, timing)
        return graph

    @property
    def knn_recall(self) -> float | None:
        """The approximate graph's recall@K against the exact one (knn_backends.recall_at_k), or None."""
        return self.timings.get("knn_graph", {}).get("knn_recall")

    def _load_graph(self, k: int) -> KnnGraph | None:
        """The smallest cached graph of k neighbours or more, checked (whole, T x K); a damaged
        file is reported and removed."""
        folder = self.graph_folder
        if folder is None or not folder.exists():
            return None
        total = len(self.features)
        stored = sorted((int(p.stem.split("-")[1]), p) for p in folder.glob("knn-*.npz") if p.stem.split("-")[1].isdigit())
        for size, path in stored:
            if size < k:
                continue
            start = time.perf_counter()
            try:
                data = load_npz(path, {"indices": (total, size), "distances": (total, size), "farthest": (total,)})
            except DamagedFile as error:
                discard(path, error)
                continue
            self.timings["knn_graph"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
            return KnnGraph(data["indices"], data["distances"], data["farthest"], self._outsiders())
        return None

    def _outsiders(self) -> np.ndarray | None:
        """The gallery context's rows outside the gallery (a KnnGraph's `outsiders`), or None."""
        if self.gallery is None:
            return None
        outside = np.ones(len(self.features), dtype=bool)
        outside[self.gallery] = False
        return outside

    def derived(self, label: str, make: Callable[["SharedSteps"], torch.Tensor]) -> "SharedSteps":
        """The shared steps over features made from these by `make` (unit rows, T x D), made once
        per label; their kNN graph and distances are cached under the label."""
        if label not in self.children:
            child = self._child(label)
            start = time.perf_counter()
            child.__dict__["features"] = make(self)  # fills the cached property
            child.timings["derive"] = {"seconds": time.perf_counter() - start}
            self.children[label] = child  # only once made: a failed make leaves nothing behind
        return self.children[label]

    def gallery_context(self, gallery_rows: np.ndarray) -> "SharedSteps":
        """The shared steps of the gallery context for the gallery `gallery_rows` (rows of X): the
        same X and query-gallery distances, the gallery's own kNN graph; made once per gallery."""
        rows = np.unique(np.asarray(gallery_rows, dtype=np.int64))  # sorted: ties go to the smaller row
        label = f"gallery-{hashlib.sha1(rows.tobytes()).hexdigest()[:16]}"
        if label not in self.children:
            child = self._child(label, rows)
            child.__dict__["features"] = self.features
            child._distances_of = self
            child.timings["gallery"] = {"rows": len(rows)}
            self.children[label] = child
        return self.children[label]

    def _child(self, label: str, gallery: np.ndarray | None = None) -> "SharedSteps":
        """New steps to keep under `label` (cached in that subfolder), in this one's context unless a
        gallery is given."""
        child = SharedSteps(self.fs, str(self.device), None, self.show_progress,
                            self.gallery if gallery is None else gallery, self.knn, self.whole_distances)
        child.cache_dir, child.root = self.cache_dir, self.root
        child.folder = None if self.folder is None else self.folder / label
        return child

    def learned(self, label: str, make: Callable[[], tuple[object, dict]]) -> object:
        """A model learned for this feature set, made (trained or loaded) once per label by `make`,
        which returns (model, what to record); the record goes into the summary under the label.
        Kept by the feature set's own steps, which a gallery context's and derived steps share."""
        if self.root is not self:
            return self.root.learned(label, make)
        if label not in self.models:
            start = time.perf_counter()
            model, described = make()
            self.timings[label] = {**described, "seconds": time.perf_counter() - start}
            self.models[label] = model
        return self.models[label]

    def summary(self) -> dict:
        """Timings of the steps done so far (compute seconds, and whether they came from the
        cache), with those of derived features under their label."""
        return {**{name: dict(value) for name, value in self.timings.items()},
                **{label: child.summary() for label, child in self.children.items()}}


def _write_json(path: Path, data: dict) -> None:
    """A step's timing beside its file (information only: a damaged one reads as empty)."""
    write_text_atomic(path.with_suffix(".json"), json.dumps(data))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
