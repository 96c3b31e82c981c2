"""VeRi-776 (Liu et al., "Large-scale vehicle re-identification in urban surveillance
videos", ICME 2016).

776 vehicles from 20 cameras: 576 for training (37,746 images), 200 for testing with 1,678
queries and 11,579 gallery images.

Released layout: VeRi/ with image_train/, image_query/, image_test/ and the lists
name_train.txt, name_query.txt, name_test.txt (one file name a line); names like
0002_c002_00030600_0.jpg: vehicle 0002, camera 002.
"""
import re
from pathlib import Path

from rerankbench.features.released import VEHICLE_SIZE, ReleasedLayout, ReleasedSplits, listed, subfolder
from rerankbench.twins.synthetic import SplitCounts, TwinModel
from rerankbench.twins.twin import TwinDataset

NAME = re.compile(r"(\d+)_c(\d+)_\d+_\d+\.jpg")


def read_released(data_root: Path) -> ReleasedSplits:
    root = subfolder(data_root, "VeRi", "veri/VeRi")
    splits = ("train", "query", "test")
    return ReleasedSplits(root, *(listed(root / f"name_{s}.txt", root / f"image_{s}", NAME) for s in splits),
                          lists=tuple(f"name_{s}.txt" for s in splits))


DATASETS = [TwinDataset(
    name="veri776", title="VeRi-776", reference="Liu et al., ICME 2016",
    train=SplitCounts(576, 37746, 20), query=SplitCounts(200, 1678, 19), gallery=SplitCounts(200, 11579, 19),
    released=ReleasedLayout(read_released, VEHICLE_SIZE),
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.8871, view_share=0.7504))]
