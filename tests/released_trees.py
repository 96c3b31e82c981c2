"""Tiny copies of the six datasets' released folders, written by the tests: file names and
list files exactly as the authors distribute them (junk and distractor names included), a few
images each, every image the same tiny JPEG unless told otherwise.

Each builder writes under DATA_ROOT and returns the dataset's folder."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_jpeg(seed: int = 0, height: int = 16, width: int = 8) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_images(folder: Path, names: list[str], distinct: bool = False) -> None:
    """The named images (names may hold sub-folders); distinct: a different picture each."""
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiny_jpeg(index if distinct else 0))


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077419_03.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s6_015641_00.jpg"],
    "bounding_box_test": ["-1_c1s1_000401_03.jpg", "-1_c3s1_000101_04.jpg", "0000_c1s1_000017_02.jpg",
                          "0001_c2s1_000301_01.jpg", "0001_c5s1_001426_02.jpg", "0003_c6s2_055557_02.jpg"],
}


def market1501(data_root: Path, distinct: bool = False) -> Path:
    root = data_root / "Market-1501-v15.09.15"
    for split, names in MARKET.items():
        write_images(root / split, names, distinct)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # shipped in the release, not an image
    return root


def dukemtmc(data_root: Path) -> Path:
    root = data_root / "DukeMTMC-reID"
    write_images(root / "bounding_box_train", ["0005_c2_f0046985.jpg", "0005_c5_f0051341.jpg", "0008_c1_f0049141.jpg"])
    write_images(root / "query", ["0019_c1_f0055306.jpg"])
    write_images(root / "bounding_box_test", ["0019_c3_f0061720.jpg", "5888_c4_f0134563.jpg"])
    return root


MSMT_TRAIN = ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_003_13_0303noon_1171_1.jpg 1"]
MSMT_VAL = ["0001/0001_004_13_0303noon_1190_1.jpg 1"]
MSMT_QUERY = ["0000/0000_000_01_0303morning_0035_0.jpg 0"]
MSMT_GALLERY = ["0000/0000_004_05_0303afternoon_0599_2.jpg 0", "0002/0002_001_15_0304morning_0201_0.jpg 2"]


def msmt17(data_root: Path, version: str = "V1") -> Path:
    root = data_root / f"MSMT17_{version}"
    train, test = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    for folder, name, lines in ((train, "list_train.txt", MSMT_TRAIN), (train, "list_val.txt", MSMT_VAL),
                                (test, "list_query.txt", MSMT_QUERY), (test, "list_gallery.txt", MSMT_GALLERY)):
        write_images(root / folder, [line.split()[0] for line in lines])
        write_lines(root / name, lines)
    return root


def veri776(data_root: Path) -> Path:
    root = data_root / "VeRi"
    splits = {"train": ["0001_c001_00016450_0.jpg", "0001_c002_00016470_0.jpg", "0004_c019_00026260_1.jpg"],
              "query": ["0002_c002_00030600_0.jpg"],
              "test": ["0002_c003_00084630_1.jpg", "0005_c019_00048385_0.jpg"]}
    for split, names in splits.items():
        write_images(root / f"image_{split}", names)
        write_lines(root / f"name_{split}.txt", names)
    return root


VERIWILD_CAMERAS = {"00001/000001": 1, "00001/000002": 5, "00002/000010": 7, "03000/100001": 12,
                    "03000/100002": 30, "03001/100010": 12, "05000/200001": 3, "05000/200002": 4}


def veriwild(data_root: Path) -> Path:
    root = data_root / "VERI-Wild"
    write_images(root / "images", [f"{key}.jpg" for key in VERIWILD_CAMERAS])
    split = root / "train_test_split"
    write_lines(split / "vehicle_info.txt", ["id/image;Camera ID;Time;Model;Type;Color"] + [
        f"{key};{camera};2018-03-11 11:40:07;Audi-A6L;sedan;black" for key, camera in VERIWILD_CAMERAS.items()])
    write_lines(split / "train_list.txt", ["00001/000001", "00001/000002", "00002/000010"])
    for size in (3000, 5000, 10000):
        write_lines(split / f"test_{size}_query.txt", ["03000/100001"] + (["05000/200001"] if size > 3000 else []))
        write_lines(split / f"test_{size}.txt", ["03000/100002", "03001/100010"] + (["05000/200002"] if size > 3000 else []))
    return root


def vehicleid(data_root: Path) -> Path:
    root = data_root / "VehicleID_V1.0"
    train = ["0000001 0", "0000002 0", "0000010 3"]
    test = ["0000005 7", "0000006 7", "0000007 7", "0000011 9", "0000012 9"]
    write_images(root / "image", [f"{line.split()[0]}.jpg" for line in train + test])
    write_lines(root / "train_test_split" / "train_list.txt", train)
    for size in (800, 1600, 2400):
        write_lines(root / "train_test_split" / f"test_list_{size}.txt", test[:size // 400])
    return root
