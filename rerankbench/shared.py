"""The shared steps: parameter-independent work on one feature set, done once.

Every method and every parameter value of a sweep reuses: the L2-normalised X = [Q; G] on
the chosen device, the exact kNN graph over X (neighbours.py) and the distances between
every candidate query row and gallery row (protocols.candidate_rows). Each step is timed
apart (`timings`) and, given a cache folder, written to disk so that later runs and other
processes load it instead of computing it again.
"""
from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .distances import PrecomputedDistances, euclidean_blocks
from .featureset import FeatureSet
from .neighbours import KnnGraph, build_knn_graph
from .progress import progress
from .protocols import candidate_rows


class SharedSteps:
    def __init__(self, fs: FeatureSet, device: str = "cpu", cache_dir: str | Path | None = None,
                 show_progress: bool = False):
        self.fs = fs
        self.device = torch.device(device)
        self.folder = None if cache_dir is None else Path(cache_dir) / "shared" / f"{fs.name}-{fs.fingerprint}"
        self.show_progress = show_progress
        self.timings: dict[str, dict] = {}
        self._graph: KnnGraph | None = None
        self._distances: PrecomputedDistances | None = None

    @cached_property
    def features(self) -> torch.Tensor:
        """X = [Q; G], rows L2-normalised, float32, on the device."""
        start = time.perf_counter()
        x = torch.from_numpy(self.fs.stacked()).to(self.device)
        x /= x.norm(dim=1, keepdim=True)  # in place: one copy of X
        self.timings["normalise"] = {"seconds": time.perf_counter() - start}
        return x

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
            path = None if self.folder is None else self.folder / "distances.npy"
            if path is not None and path.exists():
                start = time.perf_counter()
                matrix = np.load(path, mmap_mode="r")
                self.timings["distances"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
            else:
                matrix = self._compute_distances(rows, columns, path)
            self._distances = PrecomputedDistances(matrix, rows, columns)
        return self._distances

    def _compute_distances(self, rows: np.ndarray, columns: np.ndarray, path: Path | None) -> np.ndarray:
        start = time.perf_counter()
        x = self.features
        if path is None:
            matrix = np.empty((len(rows), len(columns)), dtype=np.float32)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), len(columns)))
        for _ in progress(euclidean_blocks(x, rows, columns, out=matrix), "distances", self.show_progress):
            pass
        seconds = time.perf_counter() - start
        self.timings["distances"] = {"seconds": seconds, "cached": False}
        if path is not None:
            matrix.flush()
            del matrix
            tmp.replace(path)
            _write_json(path, {"seconds": seconds})
            matrix = np.load(path, mmap_mode="r")
        return matrix

    def _build_graph(self, k: int) -> KnnGraph:
        x = self.features
        start = time.perf_counter()
        graph = build_knn_graph(x, k, self.show_progress)
        seconds = time.perf_counter() - start
        self.timings["knn_graph"] = {"seconds": seconds, "k": k, "cached": False}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"knn-{k}.npz"
            tmp = self.folder / f"knn-{k}.tmp.npz"
            np.savez(tmp, indices=graph.indices, distances=graph.distances)
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
                    graph = KnnGraph(data["indices"], data["distances"])
                self.timings["knn_graph"] = {**_read_json(path), "cached": True, "load_seconds": time.perf_counter() - start}
                return graph
        return None

    def summary(self) -> dict:
        """Timings of the steps done so far (compute seconds, and whether they came from the cache)."""
        return {name: dict(value) for name, value in self.timings.items()}


def _write_json(path: Path, data: dict) -> None:
    path.with_suffix(".json").write_text(json.dumps(data))


def _read_json(path: Path) -> dict:
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else {}
