"""VehicleID (Liu et al., "Deep Relative Distance Learning: Tell the Difference Between
Similar Vehicles", CVPR 2016).

26,267 vehicles without camera ids: 13,164 for training (113,346 images) and test lists of
800 / 1,600 / 2,400 vehicles. Protocol: in each of 10 seeded draws one image per vehicle
forms the gallery and every other image is a query; CMC@1 and CMC@5 are averaged over the
draws. k = 4 for the neighbourhood methods (paper, Table IV: N / C = 1 here).

Released layout: VehicleID_V1.0/image/<name>.jpg and VehicleID_V1.0/train_test_split/ with
train_list.txt and test_list_{800,1600,2400}.txt, lines "0000123 0452" (image name, vehicle).
The test list is the pool the protocol draws from; its query and gallery here are one seeded
draw (gallery: one image per vehicle), as for the twin.
"""
from functools import partial
from pathlib import Path

import numpy as np

from rerankbench.features.released import (
    VEHICLE_SIZE,
    Images,
    ReleasedLayout,
    ReleasedSplits,
    folder,
    images,
    list_lines,
    subfolder,
    whole_number,
)
from rerankbench.features.trials import one_per_identity
from rerankbench.twins.synthetic import SplitCounts, TwinModel
from rerankbench.twins.twin import TwinDataset

TRAIN = SplitCounts(13164, 113346)


def read_released(data_root: Path, vehicles: int) -> ReleasedSplits:
    root = subfolder(data_root, "VehicleID_V1.0", "vehicleid/VehicleID_V1.0")
    lists = folder(root / "train_test_split")
    image_folder = folder(root / "image")
    names = ("train_list.txt", f"test_list_{vehicles}.txt")
    train, test = (_listed(lists / name, image_folder) for name in names)
    gallery = one_per_identity(test.ids, np.random.default_rng(0))
    query = np.setdiff1d(np.arange(len(test)), gallery)
    return ReleasedSplits(root, train, test.rows(query), test.rows(gallery),
                          lists=tuple(f"train_test_split/{name}" for name in names))


def _listed(list_file: Path, image_folder: Path) -> Images:
    lines = list_lines(list_file, 2)
    ids = [whole_number(vehicle, f"{list_file}, image {name}") for name, vehicle in lines]
    return images([image_folder / f"{name}.jpg" for name, _ in lines], ids, None, list_file)


def _test_set(size: str, ids: int, queries: int, noise: float, view_share: float) -> TwinDataset:
    return TwinDataset(
        name=f"vehicleid_{size}", title=f"VehicleID ({size})", reference="Liu et al., CVPR 2016",
        train=TRAIN, query=SplitCounts(ids, queries), gallery=SplitCounts(ids, ids), protocol="vehicleid",
        k_override=4, model=TwinModel(noise=noise, view_share=view_share, views=2, camera_shift=0.0),
        train_model=TRAIN_MODEL, released=ReleasedLayout(partial(read_released, vehicles=ids), VEHICLE_SIZE))


# noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md);
# the three test sets share one train split, made from the large test set's model as it is: the
# paper's backbone underfits this dataset's large training set (Table VI), so it is not easier.
TRAIN_MODEL = TwinModel(noise=1.6613, view_share=0.6375, views=2, camera_shift=0.0)
DATASETS = [_test_set("small", 800, 5693, noise=1.8797, view_share=0.425),
            _test_set("medium", 1600, 11777, noise=1.6165, view_share=0.6375),
            _test_set("large", 2400, 17377, noise=1.6613, view_share=0.6375)]
