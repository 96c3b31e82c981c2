"""Reading the six datasets' released folders (tiny copies from released_trees.py): counts,
identities, cameras and split membership, and a clear error for every broken folder."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import released_trees as trees
from rerankbench.engine import registry
from rerankbench.features.released import LayoutError


def read(name, data_root):
    return registry.datasets()[name].released.read(data_root)


def rows(images):
    """(file name, identity, camera) per image."""
    cams = [None] * len(images) if images.cams is None else images.cams.tolist()
    return [(path.name, int(i), c) for path, i, c in zip(images.paths, images.ids.tolist(), cams)]


def test_market1501_keeps_junk_and_distractors(tmp_path):
    root = trees.market1501(tmp_path)
    splits = read("market1501", tmp_path)
    assert splits.root == root
    assert rows(splits.train) == [("0002_c1s1_000451_03.jpg", 2, 1), ("0002_c2s1_000551_01.jpg", 2, 2),
                                  ("0007_c3s3_077419_03.jpg", 7, 3)]
    assert rows(splits.query) == [("0001_c1s1_001051_00.jpg", 1, 1), ("0003_c4s6_015641_00.jpg", 3, 4)]
    assert rows(splits.gallery) == [("-1_c1s1_000401_03.jpg", -1, 1), ("-1_c3s1_000101_04.jpg", -1, 3),
                                    ("0000_c1s1_000017_02.jpg", 0, 1), ("0001_c2s1_000301_01.jpg", 1, 2),
                                    ("0001_c5s1_001426_02.jpg", 1, 5), ("0003_c6s2_055557_02.jpg", 3, 6)]
    assert all(path.parent == root / "query" for path in splits.query.paths)
    # the data root may also be the dataset's own folder
    assert rows(read("market1501", root).gallery) == rows(splits.gallery)


def test_dukemtmc(tmp_path):
    trees.dukemtmc(tmp_path)
    splits = read("dukemtmc", tmp_path)
    assert rows(splits.train) == [("0005_c2_f0046985.jpg", 5, 2), ("0005_c5_f0051341.jpg", 5, 5),
                                  ("0008_c1_f0049141.jpg", 8, 1)]
    assert rows(splits.query) == [("0019_c1_f0055306.jpg", 19, 1)]
    assert rows(splits.gallery) == [("0019_c3_f0061720.jpg", 19, 3), ("5888_c4_f0134563.jpg", 5888, 4)]


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17_lists(tmp_path, version):
    root = trees.msmt17(tmp_path, version)
    splits = read("msmt17", tmp_path)
    train, test = (root / "train", root / "test") if version == "V1" else (root / "mask_train_v2", root / "mask_test_v2")
    assert splits.train.paths == [train / line.split()[0] for line in trees.MSMT_TRAIN]  # list_val.txt: not train
    assert splits.query.paths == [test / "0000/0000_000_01_0303morning_0035_0.jpg"]
    assert [p.relative_to(test).as_posix() for p in splits.gallery.paths] == [l.split()[0] for l in trees.MSMT_GALLERY]
    assert splits.train.ids.tolist() == [0, 1] and splits.train.cams.tolist() == [1, 13]
    assert splits.gallery.ids.tolist() == [0, 2] and splits.gallery.cams.tolist() == [5, 15]
    assert splits.lists[0] == f"MSMT17_{version}"


def test_veri776(tmp_path):
    root = trees.veri776(tmp_path)
    splits = read("veri776", tmp_path)
    assert rows(splits.train) == [("0001_c001_00016450_0.jpg", 1, 1), ("0001_c002_00016470_0.jpg", 1, 2),
                                  ("0004_c019_00026260_1.jpg", 4, 19)]
    assert rows(splits.query) == [("0002_c002_00030600_0.jpg", 2, 2)]
    assert rows(splits.gallery) == [("0002_c003_00084630_1.jpg", 2, 3), ("0005_c019_00048385_0.jpg", 5, 19)]
    assert splits.gallery.paths[0].parent == root / "image_test"


@pytest.mark.parametrize("name, query, gallery", [
    ("veriwild_small", ["03000/100001"], ["03000/100002", "03001/100010"]),
    ("veriwild_medium", ["03000/100001", "05000/200001"], ["03000/100002", "03001/100010", "05000/200002"]),
])
def test_veriwild_test_lists_and_cameras(tmp_path, name, query, gallery):
    root = trees.veriwild(tmp_path)
    splits = read(name, tmp_path)
    for images, keys in ((splits.train, ["00001/000001", "00001/000002", "00002/000010"]),
                         (splits.query, query), (splits.gallery, gallery)):
        assert images.paths == [root / "images" / f"{key}.jpg" for key in keys]
        assert images.ids.tolist() == [int(key.split("/")[0]) for key in keys]
        assert images.cams.tolist() == [trees.VERIWILD_CAMERAS[key] for key in keys]
    assert "train_test_split/vehicle_info.txt" in splits.lists


@pytest.mark.parametrize("name, vehicles, lines", [("vehicleid_small", 800, 2), ("vehicleid_medium", 1600, 4),
                                                   ("vehicleid_large", 2400, 5)])
def test_vehicleid_pool_split_one_gallery_image_per_vehicle(tmp_path, name, vehicles, lines):
    root = trees.vehicleid(tmp_path)
    splits = read(name, tmp_path)
    assert [p.name for p in splits.train.paths] == ["0000001.jpg", "0000002.jpg", "0000010.jpg"]
    assert splits.train.ids.tolist() == [0, 0, 3] and splits.train.cams is None
    listed = (root / "train_test_split" / f"test_list_{vehicles}.txt").read_text().splitlines()
    assert len(listed) == lines
    pool = {root / "image" / f"{line.split()[0]}.jpg": int(line.split()[1]) for line in listed}
    both = splits.query.paths + splits.gallery.paths
    assert sorted(both) == sorted(pool) and len(set(both)) == len(both)
    assert [pool[p] for p in both] == splits.query.ids.tolist() + splits.gallery.ids.tolist()
    assert sorted(splits.gallery.ids.tolist()) == sorted(set(pool.values()))  # one image per vehicle


def test_registry_reads_every_dataset(tmp_path):
    for build in (trees.market1501, trees.dukemtmc, trees.msmt17, trees.veri776, trees.veriwild, trees.vehicleid):
        build(tmp_path)
    for name, dataset in registry.datasets().items():
        if dataset.released is None:  # market1501_500k: a twin only (the 500k distractors are not read)
            continue
        splits = dataset.released.read(tmp_path)
        assert min(len(splits.train), len(splits.query), len(splits.gallery)) >= 1, name
        assert all(path.is_file() for path in splits.query.paths + splits.gallery.paths + splits.train.paths), name
        assert dataset.released.image_size == ((256, 128) if name in ("market1501", "dukemtmc", "msmt17") else (256, 256))


def _remove(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize("name, build, change, expected", [
    ("market1501", trees.market1501, lambda root: _remove(root / "query"), "query: missing folder"),
    ("market1501", trees.market1501, lambda root: (root / "query" / "0001_c1_f00.jpg").write_bytes(b""),
     "0001_c1_f00.jpg: file name does not parse"),
    ("market1501", trees.market1501, lambda root: [p.unlink() for p in (root / "query").glob("*.jpg")],
     "query: empty split"),
    ("dukemtmc", trees.dukemtmc, lambda root: _remove(root), "missing folder DukeMTMC-reID"),
    ("msmt17", trees.msmt17, lambda root: _remove(root / "list_gallery.txt"), "list_gallery.txt: missing list file"),
    ("msmt17", trees.msmt17, lambda root: trees.write_lines(root / "list_query.txt", ["0000/x.jpg zero"]),
     "'zero' is not a whole number"),
    ("veri776", trees.veri776, lambda root: _remove(root / "name_query.txt"), "name_query.txt: missing list file"),
    ("veri776", trees.veri776, lambda root: trees.write_lines(root / "name_test.txt", []), "name_test.txt: empty split"),
    ("veriwild_small", trees.veriwild, lambda root: _remove(root / "train_test_split" / "vehicle_info.txt"),
     "vehicle_info.txt: missing list file"),
    ("veriwild_large", trees.veriwild, lambda root: trees.write_lines(
        root / "train_test_split" / "test_10000.txt", ["09999/999999"]), "not in vehicle_info.txt, e.g. 09999/999999"),
    ("vehicleid_small", trees.vehicleid, lambda root: trees.write_lines(
        root / "train_test_split" / "test_list_800.txt", ["0000005 7 extra"]), "line 1: expected 2 fields"),
])
def test_broken_folders_name_the_path(tmp_path, name, build, change, expected):
    root = build(tmp_path)
    change(root)
    with pytest.raises(LayoutError) as error:
        read(name, tmp_path)
    assert str(tmp_path) in str(error.value)
    assert expected in str(error.value)


def test_extraction_reports_an_unreadable_image(tmp_path):
    from rerankbench.features.extraction import load_image
    root = trees.veri776(tmp_path)
    path = root / "image_query" / "0002_c002_00030600_0.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(LayoutError, match="0002_c002_00030600_0.jpg: not a readable image"):
        load_image(path, 16, 8)
    image = load_image(root / "image_test" / "0002_c003_00084630_1.jpg", 32, 12)
    assert image.shape == (32, 12, 3) and image.dtype == np.uint8
