"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

4,101 identities from 15 cameras (12 outdoor, 3 indoor): 1,041 for training (30,248 images),
3,060 for testing with 11,659 queries and 82,161 gallery images.

Released layout: MSMT17_V1/ (or MSMT17_V2/) with the image folders train/ and test/ (V2:
mask_train_v2/ and mask_test_v2/) and list_train.txt, list_val.txt, list_query.txt,
list_gallery.txt, lines "0000/0000_000_01_0303morning_0015_0.jpg 0": the image's path in its
folder and its identity; the camera is the file name's third field (01). The train split is
list_train.txt (list_val.txt's images are a held-out part of it, unused, as in fast-reid).
"""
import re
from pathlib import Path

from rerankbench.features.released import (
    PERSON_SIZE,
    Images,
    ReleasedLayout,
    ReleasedSplits,
    images,
    list_lines,
    name_fields,
    subfolder,
    whole_number,
)
from rerankbench.twins.synthetic import SplitCounts, TwinModel
from rerankbench.twins.twin import TwinDataset

NAME = re.compile(r"(\d+)_\d+_(\d+)_.+\.jpg")


def read_released(data_root: Path) -> ReleasedSplits:
    root = subfolder(data_root, "MSMT17_V1", "MSMT17_V2", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2")
    train, test = subfolder(root, "train", "mask_train_v2"), subfolder(root, "test", "mask_test_v2")
    lists = ("list_train.txt", "list_query.txt", "list_gallery.txt")
    return ReleasedSplits(root, *(_listed(root / name, folder) for name, folder in zip(lists, (train, test, test))),
                          lists=(root.name, *lists))


def _listed(list_file: Path, image_folder: Path) -> Images:
    lines = list_lines(list_file, 2)
    paths = [image_folder / path for path, _ in lines]
    ids = [whole_number(identity, str(list_file)) for _, identity in lines]
    return images(paths, ids, [name_fields(path, NAME)[1] for path in paths], list_file)


DATASETS = [TwinDataset(
    name="msmt17", title="MSMT17", reference="Wei et al., CVPR 2018",
    train=SplitCounts(1041, 30248, 15), query=SplitCounts(3060, 11659, 15), gallery=SplitCounts(3060, 82161, 15),
    released=ReleasedLayout(read_released, PERSON_SIZE),
    # noise and view_share: fitted by `python -m rerankbench calibrate --fit` (docs/calibration.md)
    model=TwinModel(noise=0.9955, view_share=0.8422))]
