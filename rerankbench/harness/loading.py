"""Which feature set a run works on: a registered dataset's twin, the real dataset under a data
root (features extracted with a checkpoint, or from the cache), or a user's features file."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..engine.registry import datasets
from ..features.extracted import released_feature_set
from ..features.extraction import Extraction
from ..features.feature_file import load_features_file
from ..features.featureset import FeatureSet
from ..features.trials import check_protocol


@dataclass(frozen=True)
class DataRequest:
    """Everything needed to load one feature set again in another process."""

    dataset: str
    scale: float = 0.1
    seed: int = 0
    dim: int = 2048
    features_file: str | None = None
    protocol: str | None = None
    cache_dir: str | None = None
    show_progress: bool = False
    data_root: str | None = None
    extraction: Extraction | None = None  # with data_root: the checkpoint and its options
    with_train: bool = False  # also the train split (a learned method's)
    distractors: int = 0  # extra distractors in a twin's gallery (twins/distractors.py)

    def __post_init__(self) -> None:
        check_sources(self.features_file, self.data_root, self.extraction)

    def load(self, log: Callable[[str], None] | None = None) -> FeatureSet:
        if self.features_file is not None:
            fs = load_features_file(self.features_file, check_protocol(self.protocol or "market"))
            return fs if self.with_train else dataclasses.replace(fs, train=None)
        if self.data_root is not None:
            if datasets()[self.dataset].released is None:
                raise ValueError(f"{self.dataset} is a twin only: no released folder is read for it (drop --data-root)")
            fs = released_feature_set(datasets()[self.dataset], self.data_root, self.extraction, self.cache_dir,
                                      with_train=self.with_train, show_progress=self.show_progress, log=log)
        else:
            fs = datasets()[self.dataset].load(self.scale, self.seed, self.dim, self.with_train, self.cache_dir,
                                               self.show_progress, self.distractors)
        return fs.with_protocol(check_protocol(self.protocol)) if self.protocol else fs


def check_sources(features_file: str | None, data_root: str | None, extraction: Extraction | None) -> None:
    """One source of features: a twin (neither), a features file, or a data root with a checkpoint."""
    if data_root is not None and extraction is None:
        raise ValueError("--data-root needs --checkpoint: the features are extracted from the images with it")
    if extraction is not None and data_root is None:
        raise ValueError("--checkpoint needs --data-root: the folder of the datasets it embeds")
    if data_root is not None and features_file is not None:
        raise ValueError("give --data-root or --features, not both")


def features_file_name(path: str | Path) -> str:
    return Path(path).stem
