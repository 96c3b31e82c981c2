"""Feature extraction: a randomly initialised ResNet-50 saved in the torchvision, fast-reid and
torchreid checkpoint layouts loads back and gives the features of the model it was saved from;
checkpoints that do not fit are refused; features are cached; the CLI runs on real data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import released_trees as trees
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.features.backbone import ResNet50
from rerankbench.features.checkpoint import CheckpointError, file_sha256, load_backbone
from rerankbench.features.extracted import released_feature_set
from rerankbench.features.extraction import Extraction, extract
from rerankbench.harness.store import ResultsStore

SIZE = (32, 16)  # tiny inputs: the architecture is the real one, the images are not


@pytest.fixture(scope="module")
def source_model():
    """A ResNet-50 with random weights and random batch-norm statistics (so that every tensor matters)."""
    torch.manual_seed(0)
    model = ResNet50(last_stride=1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.2, 0.6)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_layout(model, layout, path, change=None):
    """Save the model's state dict as the given library saves its checkpoints, head keys included."""
    state = dict(model.state_dict())
    if change:
        change(state)
    head = {"fc.weight": torch.randn(10, 2048), "fc.bias": torch.randn(10)}
    if layout == "torchvision":
        checkpoint = {**state, **head}
    elif layout == "fast-reid":
        checkpoint = {"model": {**{f"backbone.{k}": v for k, v in state.items()}, "pixel_mean": torch.zeros(1, 3, 1, 1),
                                "pixel_std": torch.ones(1, 3, 1, 1), "heads.bottleneck.0.weight": torch.ones(2048),
                                "heads.weight": torch.randn(10, 2048)},
                      "optimizer": {}, "scheduler": {}, "iteration": 1000}
    else:  # torchreid, saved from nn.DataParallel
        checkpoint = {"state_dict": {**{f"module.{k}": v for k, v in state.items()},
                                     "module.classifier.weight": torch.randn(10, 2048)}, "epoch": 60, "rank1": 0.9}
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, source_model):
    """The source model saved once in each layout: {layout: path}."""
    folder = tmp_path_factory.mktemp("checkpoints")
    return {layout: save_layout(source_model, layout, folder / f"{layout}.pth")
            for layout in ("torchvision", "fast-reid", "torchreid")}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("data")
    trees.market1501(data_root, distinct=True)
    return data_root


@pytest.fixture(scope="module")
def gallery_features(source_model, market):
    """The source model's blocks of Market's gallery images but the junk (paths, blocks)."""
    splits = registry.datasets()["market1501"].released.read(market)
    paths = [path for path, identity in zip(splits.gallery.paths, splits.gallery.ids) if identity != -1]
    return paths, extract(source_model, paths, Extraction("unused", image_size=SIZE).preprocessing(SIZE), device="cpu")


def assert_same_blocks(got: dict, want: dict):
    assert set(got) == set(want) == {"c3", "c4", "c5"}
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["torchvision", "fast-reid", "torchreid"])
def test_checkpoint_layouts_give_the_saved_models_features(source_model, checkpoints, gallery_features, layout):
    model, report = load_backbone(checkpoints[layout])
    assert report.layout == layout and report.fits and report.loaded == len(source_model.state_dict())
    assert report.head and all(key.startswith(("fc.", "classifier.", "heads.", "pixel_")) for key in report.head)
    paths, want = gallery_features
    assert_same_blocks(extract(model, paths, Extraction("unused", image_size=SIZE).preprocessing(SIZE)), want)


def test_a_checkpoint_that_does_not_fit_is_refused_unless_allowed(tmp_path, source_model):
    def change(state):
        state.pop("layer3.2.bn2.weight")
        state["layer4.0.se.fc.weight"] = torch.ones(3)  # e.g. an SE-ResNet's
        state["conv1.weight"] = torch.ones(64, 3, 3, 3)
    path = save_layout(source_model, "fast-reid", tmp_path / "model_final.pth", change)
    expected = ["1 missing (layer3.2.bn2.weight)", "1 unexpected (layer4.0.se.fc.weight)", "1 mismatched (conv1.weight)"]
    with pytest.raises(CheckpointError) as error:
        load_backbone(path)
    assert str(path) in str(error.value) and all(problem in str(error.value) for problem in expected)
    model, report = load_backbone(path, allow_partial=True)
    assert not report.fits and all(problem in report.describe() for problem in expected)
    assert report.loaded == len(source_model.state_dict()) - 2
    torch.testing.assert_close(model.layer4[0].conv2.weight, source_model.layer4[0].conv2.weight)


def test_unreadable_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable torch checkpoint"):
        load_backbone(garbage)
    with pytest.raises(CheckpointError, match="nowhere.pth: no such checkpoint file"):
        load_backbone(tmp_path / "nowhere.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="empty.pth: holds no state dict of tensors"):
        load_backbone(tmp_path / "empty.pth")


def test_backbone_blocks_and_last_stride(source_model):
    x = torch.randn(1, 3, 32, 16)
    with torch.no_grad():
        out = source_model(x)
        assert {name: block.shape[1] for name, block in out.items()} == {"c3": 512, "c4": 1024, "c5": 2048}
        strided = ResNet50(last_stride=2).eval()
        strided.load_state_dict(source_model.state_dict())
        # the same weights read a 1x1 C5 map instead of 2x1, so the pooled features differ
        assert not torch.allclose(strided(x)["c5"], out["c5"])

class PooledConv(torch.nn.Module):
    """A stand-in backbone with ResNet50's outputs: pooled blocks of a random 3x3 convolution."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return {"c3": y[:, :2].mean(dim=(2, 3)), "c4": y[:, 2:4].mean(dim=(2, 3)), "c5": y.amax(dim=(2, 3))}


def test_flip_averaging(tmp_path):
    """With flip, an image and its mirror image (lossless PNGs) get the same features; without, not."""
    source_model = PooledConv()
    pixels = np.random.default_rng(0).integers(0, 256, (16, 8, 3), dtype=np.uint8)
    paths = [tmp_path / "image.png", tmp_path / "mirror.png"]
    for path, array in zip(paths, (pixels, pixels[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(array)).save(path)
    preprocessing = Extraction("unused", flip=True).preprocessing(SIZE)
    both = extract(source_model, paths, preprocessing, device="cpu")["c5"]
    plain = extract(source_model, paths, {**preprocessing, "flip": False}, device="cpu")["c5"]
    np.testing.assert_allclose(both[0], both[1], rtol=1e-5, atol=1e-6)
    assert np.abs(plain[0] - plain[1]).max() > 1e-4
    np.testing.assert_allclose(both, plain.mean(axis=0, keepdims=True).repeat(2, axis=0), rtol=1e-5, atol=1e-6)


def test_released_feature_set_and_its_cache(tmp_path, checkpoints, market, gallery_features, monkeypatch):
    path = checkpoints["torchvision"]
    calls = []
    real_extract = extract
    monkeypatch.setattr("rerankbench.features.extracted.extract", lambda model, paths, *a: calls.append(len(paths)) or
                        real_extract(model, paths, *a))
    dataset, cache = registry.datasets()["market1501"], tmp_path / "cache"
    messages = []
    first = released_feature_set(dataset, market, Extraction(str(path), image_size=SIZE), cache, log=messages.append)
    assert calls == [2, 4]  # query, gallery (junk left out)
    fs = first
    assert_same_blocks({"c5": fs.gallery.features, **fs.gallery.blocks}, gallery_features[1])
    assert fs.gallery.ids.tolist() == [0, 1, 1, 3] and fs.gallery.cams.tolist() == [1, 2, 5, 6]
    assert fs.query.ids.tolist() == [1, 3] and fs.query.blocks["c4"].shape == (2, 1024)
    assert fs.source["checkpoint_sha256"] == file_sha256(path) and fs.source["junk_dropped"] == 2
    assert not fs.synthetic and fs.protocol == "market"
    second = released_feature_set(dataset, market, Extraction(str(path), image_size=SIZE), cache, with_train=True,
                                  log=messages.append)
    assert calls == [2, 4, 3]  # only the train split is new
    np.testing.assert_array_equal(second.gallery.features, first.gallery.features)
    assert second.fingerprint == first.fingerprint and len(second.train) == 3
    released_feature_set(dataset, market, Extraction(str(path), image_size=SIZE, batch_size=1), cache)
    assert calls == [2, 4, 3]  # the batch size does not change the features
    released_feature_set(dataset, market, Extraction(str(path), image_size=SIZE, flip=True), cache)
    assert calls == [2, 4, 3, 2, 4]  # the preprocessing does
    assert not any("features from the cache" in m for m in messages)  # each call above extracted something
    released_feature_set(dataset, market, Extraction(str(path), image_size=SIZE), cache, log=messages.append)
    assert "features from the cache" in messages[-1]


def test_cli_extract_then_run_on_real_data(tmp_path, checkpoints, market, capsys):
    path = checkpoints["torchreid"]
    results = tmp_path / "results"
    common = ["--datasets", "market1501", "--data-root", str(market), "--checkpoint", str(path), "--image-size", "32x16",
              "--no-progress", "--results", str(results)]
    assert main(["extract", "--device", "cpu", *common]) == 0
    out, err = capsys.readouterr()
    assert "market1501: 2 query, 4 gallery images; c5 2048-d, c3 512-d, c4 1024-d" in out
    assert "torchreid layout" in err and "features cached in" in err
    assert main(["run", "--methods", "baseline", *common]) == 0
    out, err = capsys.readouterr()
    assert "features from the cache" in out
    (record,) = ResultsStore(results).records()
    assert record["status"] == "ok" and record["synthetic"] is False
    info = record["dataset_info"]
    assert info["source_kind"] == "released" and info["source_data_root"] == str(market.resolve())
    assert info["source_lists"] == ["bounding_box_train", "query", "bounding_box_test"]
    assert len(info["source_checkpoint_sha256"]) == 64 and info["source_preprocessing"]["height"] == 32


@pytest.mark.parametrize("args, expected", [
    (["--checkpoint", "x.pth"], "--checkpoint needs --data-root"),
    (["--data-root", "DIR"], "--data-root needs --checkpoint"),
    (["--data-root", "DIR", "--checkpoint", "x.pth", "--image-size", "256"], "expected HEIGHTxWIDTH"),
])
def test_cli_real_data_option_errors(tmp_path, capsys, args, expected):
    args = [str(tmp_path) if a == "DIR" else a for a in args]
    assert main(["run", "--methods", "baseline", "--datasets", "market1501", "--results", str(tmp_path), *args]) == 2
    assert expected in capsys.readouterr().err


def test_acp_trains_on_real_data_with_the_c3_c4_c5_fusion(tmp_path, checkpoints, capsys):
    """train --data-root extracts the train split too and fuses C3, C4 and C5; run then uses that model."""
    data_root = tmp_path / "data"
    trees.market1501(data_root, distinct=True)
    train = [f"{identity:04d}_c{1 + shot % 6}s1_{shot:06d}_01.jpg" for identity in range(10, 20) for shot in range(6)]
    trees.write_images(data_root / "Market-1501-v15.09.15" / "bounding_box_train", train, distinct=True)
    results = tmp_path / "results"
    common = ["--data-root", str(data_root), "--checkpoint", str(checkpoints["fast-reid"]), "--image-size", "32x16",
              "--no-progress", "--results", str(results), *(f"--set=acp.{key}={value}" for key, value in
                                                            {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8,
                                                             "epochs": 1}.items())]
    assert main(["train", "--method", "acp", "--dataset", "market1501", *common]) == 0
    out, err = capsys.readouterr()
    assert "(63 images)" in err and "epoch-0001.pt: 1 epochs" in out  # 60 + the release's 3
    assert main(["run", "--methods", "acp", "--datasets", "market1501", *common]) == 0
    (record,) = ResultsStore(results).records()
    assert record["status"] == "ok" and record["params"]["epoch_size"] == 63  # real data: every image, each epoch
    assert record["training"]["blocks"] == ["c3", "c4", "features"] and record["training"]["epochs_done"] == 1
    assert record["training"]["checkpoint"] in out
