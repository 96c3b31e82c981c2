"""The shared steps: parameter-independent work on one feature set, done once.

Every method and every parameter value of a sweep reuses: the L2-normalised X = [Q; G] on
the chosen device, the exact kNN graph over X (neighbours.py) and the distances between
every candidate query row and gallery row (features.trials.candidate_rows). Each step is timed
apart (`timings`) and, given a cache folder, written to disk so that later runs and other
processes load it instead of computing it again. A method that re-ranks derived features
(alpha-QE + k-reciprocal works on alpha-QE-expanded X) gets the same steps over them from
`derived`, built once per label and reported in the summary under that label. A learned
method (ACP) keeps its trained model here too (`learned`), so that the cells of a sweep share it.
"""
from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..features.featureset import FeatureSet, unit_rows
from ..features.trials import candidate_rows
from ..runtime.device import resolve_device
from ..runtime.progress import progress
from .distances import PrecomputedDistances, euclidean_blocks
from .neighbours import KnnGraph, build_knn_graph


class SharedSteps:
    def __init__(self, fs: FeatureSet, device: str = "cpu", cache_dir: str | Path | None = None,
                 show_progress: bool = False):
        self.fs = fs
        self.device = resolve_device(str(device))
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.folder = None if cache_dir is None else self.cache_dir / "shared" / f"{fs.name}-{fs.fingerprint}"
        self.show_progress = show_progress
        self.timings: dict[str, dict] = {}
        self._graph: KnnGraph | None = None
        self._distances: PrecomputedDistances | None = None
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

    def build(self, k: int, with_distances: bool) -> None:
        """Make or load the kNN graph for k (if k) and, if asked, the query-gallery distances;
        when both must be computed they come from one pass over X X^T."""
        k = min(k, len(self.features))
        if k and (self._graph is None or self._graph.k < k):
            self._graph = self._load_graph(k) or self._graph
        graph_missing = k and (self._graph is None or self._graph.k < k)
        if graph_missing and with_distances and self._distances is None and not self._distances_path_exists():
            rows, columns = candidate_rows(self.fs)
            matrix, tmp = self._new_distances(rows, columns)
            self._graph = self._build_graph(k, keep=(rows, columns, matrix))
            self.timings["distances"] = {"seconds": 0.0, "cached": False, "with_knn_graph": True}
            self._distances = PrecomputedDistances(self._store_distances(matrix, tmp, {"seconds": 0.0, "with_knn_graph": True}),
                                                   rows, columns)
            return
        if k:
            self.knn_graph(k)
        if with_distances:
            self.query_gallery_distances()

    def knn_graph(self, k: int) -> KnnGraph:
        """kNN(i, k) for every row i of X (self first); built once for the largest k asked."""
        k = min(k, len(self.features))
        if self._graph is None or self._graph.k < k:
            self._graph = self._load_graph(k) or self._build_graph(k)
        return self._graph.truncated(k)

    def query_gallery_distances(self) -> PrecomputedDistances:
        """||x_q - x_g|| for every candidate query row q and gallery row g (a float32 array,
        memory-mapped from the cache when there is one)."""
        if self._distances is None:
            rows, columns = candidate_rows(self.fs)
            if self._distances_path_exists():
                start = time.perf_counter()
                path = self.folder / "distances.npy"
                matrix = np.load(path, mmap_mode="r")
                self.timings["distances"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
            else:
                start = time.perf_counter()
                matrix, tmp = self._new_distances(rows, columns)
                for _ in progress(euclidean_blocks(self.features, rows, columns, out=matrix), "distances", self.show_progress):
                    pass
                seconds = time.perf_counter() - start
                self.timings["distances"] = {"seconds": seconds, "cached": False}
                matrix = self._store_distances(matrix, tmp, {"seconds": seconds})
            self._distances = PrecomputedDistances(matrix, rows, columns)
        return self._distances

    def _distances_path_exists(self) -> bool:
        return self.folder is not None and (self.folder / "distances.npy").exists()

    def _new_distances(self, rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, Path | None]:
        """An M x N float32 array to fill: in memory, or a memory map beside the cache."""
        if self.folder is None:
            return np.empty((len(rows), len(columns)), dtype=np.float32), None
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / "distances.tmp.npy"
        return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), len(columns))), tmp

    def _store_distances(self, matrix: np.ndarray, tmp: Path | None, meta: dict) -> np.ndarray:
        if tmp is None:
            return matrix
        matrix.flush()
        del matrix
        path = self.folder / "distances.npy"
        tmp.replace(path)
        _write_json(path, meta)
        return np.load(path, mmap_mode="r")

    def _build_graph(self, k: int, keep=None) -> KnnGraph:
        x = self.features
        start = time.perf_counter()
        graph = build_knn_graph(x, k, self.show_progress, keep)
        seconds = time.perf_counter() - start
        self.timings["knn_graph"] = {"seconds": seconds, "k": k, "cached": False}
        if keep is not None:
            self.timings["knn_graph"]["with_distances"] = True
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"knn-{k}.npz"
            tmp = self.folder / f"knn-{k}.tmp.npz"
            np.savez(tmp, indices=graph.indices, distances=graph.distances, farthest=graph.farthest)
            tmp.replace(path)
            _write_json(path, {"seconds": seconds, "k": k})
        return graph

    def _load_graph(self, k: int) -> KnnGraph | None:
        if self.folder is None or not self.folder.exists():
            return None
        stored = sorted((int(p.stem.split("-")[1]), p) for p in self.folder.glob("knn-*.npz") if p.stem.split("-")[1].isdigit())
        for size, path in stored:
            if size >= k:
                start = time.perf_counter()
                with np.load(path) as data:
                    if "farthest" not in data:  # written by an older version
                        continue
                    graph = KnnGraph(data["indices"], data["distances"], data["farthest"])
                self.timings["knn_graph"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
                return graph
        return None

    def derived(self, label: str, make: Callable[["SharedSteps"], torch.Tensor]) -> "SharedSteps":
        """The shared steps over features made from these by `make` (unit rows, T x D), made once
        per label; their kNN graph and distances are cached under the label."""
        if label not in self.children:
            child = SharedSteps(self.fs, str(self.device), None, self.show_progress)
            child.folder = None if self.folder is None else self.folder / label
            start = time.perf_counter()
            child.__dict__["features"] = make(self)  # fills the cached property
            child.timings["derive"] = {"seconds": time.perf_counter() - start}
            self.children[label] = child
        return self.children[label]

    def learned(self, label: str, make: Callable[[], tuple[object, dict]]) -> object:
        """A model learned for this feature set, made (trained or loaded) once per label by `make`,
        which returns (model, what to record); the record goes into the summary under the label."""
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
    path.with_suffix(".json").write_text(json.dumps(data))


def _read_json(path: Path) -> dict:
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else {}
