"""The command line, through rerankbench.cli.main (and one subprocess end to end)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import rerankbench
from conftest import plain_euclidean, plain_normalise
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.harness.store import ResultsStore

TWIN = ["--datasets", "market1501", "--scale", "0.02", "--dim", "32", "--no-progress"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_method(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--methods", "nope", *TWIN, "--results", str(tmp_path))
    assert code == 2
    assert one_error_line(err).startswith("error: unknown method 'nope'")
    assert not (tmp_path / "records.jsonl").exists()


def test_unknown_dataset(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--methods", "baseline", "--datasets", "nowhere", "--results", str(tmp_path),
                         "--no-progress")
    assert code == 2
    assert one_error_line(err).startswith("error: unknown dataset 'nowhere'")


@pytest.mark.parametrize("setting, message", [
    ("aqe.k", "expected METHOD.PARAM=VALUE"),
    ("k=3", "expected METHOD.PARAM=VALUE"),
    (".k=3", "expected METHOD.PARAM=VALUE"),
    ("aqe.=3", "expected METHOD.PARAM=VALUE"),
    ("alpha_qe.k=3", "not among the methods run"),
    ("aqe.alpha=3", "has no parameter alpha"),
    ("aqe.k=abc", "must be a number"),
    ("aqe.k=0", "positive whole number"),
])
def test_bad_set(capsys, tmp_path, setting, message):
    code, out, err = run(capsys, "run", "--methods", "baseline,aqe", *TWIN, "--results", str(tmp_path),
                         "--set", setting)
    assert code == 2
    assert message in one_error_line(err)
    assert not (tmp_path / "records.jsonl").exists()


def test_bad_set_infinite(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--methods", "aqe", *TWIN, "--results", str(tmp_path), "--set", "aqe.k=inf")
    assert code == 2
    one_error_line(err)


@pytest.mark.parametrize("setting, message", [
    ("k_reciprocal.lambda=2", "parameter k_reciprocal.lambda must be in [0, 1], got 2"),
    ("k_reciprocal.lambda=-1", "parameter k_reciprocal.lambda must be in [0, 1], got -1"),
    ("alpha_qe.alpha=-3", "parameter alpha_qe.alpha must be >= 0, got -3"),
])
def test_set_outside_the_parameters_range(capsys, tmp_path, setting, message):
    code, out, err = run(capsys, "run", "--methods", "alpha_qe,k_reciprocal", *TWIN, "--results", str(tmp_path),
                         "--set", setting)
    assert code == 2
    assert one_error_line(err) == f"error: {message}"
    assert not (tmp_path / "records.jsonl").exists()


def test_sweep_outside_the_parameters_range_fails_before_any_work(capsys, tmp_path):
    code, out, err = run(capsys, "sweep", "--methods", "k_reciprocal", "--param", "lambda", "--values", "0:2:0.5",
                         *TWIN, "--results", str(tmp_path))
    assert code == 2
    assert one_error_line(err) == "error: parameter k_reciprocal.lambda must be in [0, 1], got 1.5"
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # not even the twin was made


@pytest.mark.parametrize("method, key", [("aqe", "k"), ("alpha_qe", "k"), ("k_reciprocal", "k1"), ("sca", "k1"),
                                         ("gnn", "k1"), ("acp", "k1")])
def test_set_neighbourhood_larger_than_the_data(capsys, tmp_path, method, key):
    fs = rerankbench.load_dataset("market1501", scale=0.02, dim=32)
    rows = fs.num_query + fs.num_gallery
    beyond = f"{rows:,} rows of X (queries + gallery)"
    if method == "k_reciprocal":  # its k1 counts neighbours besides the row itself: kNN(i, k1 + 1)
        beyond = f"{rows - 1:,} rows of X (queries + gallery) other than the row itself"
    code, out, err = run(capsys, "run", "--methods", method, *TWIN, "--results", str(tmp_path),
                         "--set", f"{method}.{key}=100000")
    assert code == 2
    assert one_error_line(err) == f"error: parameter {method}.{key} = 100000 is larger than the {beyond}"
    assert not (tmp_path / "records.jsonl").exists()


def test_set_and_sweep_lambda_as_lam(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--methods", "k_reciprocal", *TWIN, "--results", str(tmp_path),
                         "--set", "k_reciprocal.lam=0.5")
    assert code == 0, err
    (record,) = ResultsStore(tmp_path).records()
    assert record["params"]["lambda"] == 0.5 and "lam" not in record["params"]
    assert record["overrides"] == {"lambda": 0.5}
    code, out, err = run(capsys, "run", "--methods", "k_reciprocal", *TWIN, "--results", str(tmp_path),
                         "--set", "k_reciprocal.lambda=0.5")
    assert code == 0, err
    assert "1 cell(s) already in" in out  # the same cell
    code, out, err = run(capsys, "sweep", "--methods", "k_reciprocal", "--param", "lam", "--values", "0.5,0.7",
                         *TWIN, "--results", str(tmp_path))
    assert code == 0, err
    assert [r["overrides"] for r in ResultsStore(tmp_path).records()] == [{"lambda": 0.5}, {"lambda": 0.7}]


def _features(path, m=12, n=60, dim=16, seed=0, cams=True, **changes):
    rng = np.random.default_rng(seed)
    q_ids = rng.integers(1, 8, m)
    g_ids = np.concatenate([np.arange(1, 8), rng.integers(1, 8, n - 7)])
    centres = rng.normal(size=(8, dim))
    arrays = {"qf": (centres[q_ids] + 0.8 * rng.normal(size=(m, dim))).astype(np.float32),
              "gf": (centres[g_ids] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32),
              "q_ids": q_ids, "g_ids": g_ids}
    if cams:
        arrays["q_cams"] = np.zeros(m, np.int64)
        arrays["g_cams"] = np.ones(n, np.int64)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_features_file_run_prints_table(capsys, tmp_path):
    path = tmp_path / "myfeats.npz"
    arrays = _features(path)
    results = tmp_path / "res"
    code, out, err = run(capsys, "run", "--methods", "all", "--features", str(path), "--results", str(results),
                         "--no-progress")
    assert code == 0, err
    assert "myfeats: skipped acp learn(s) from a train split, and myfeats has none" in out
    rows = [line for line in out.splitlines() if line.startswith("| myfeats ")]
    everything = ["baseline", "aqe", "alpha_qe", "k_reciprocal", "alpha_qe_k_reciprocal", "sca", "ecn", "gnn"]
    assert [row.split("|")[2].strip() for row in rows] == everything
    assert "(twin)" not in out
    records = ResultsStore(results).records()
    assert [r["status"] for r in records] == ["ok"] * len(everything)
    assert records[0]["dataset_info"]["source_kind"] == "file"
    assert records[0]["synthetic"] is False
    # the baseline's numbers: those of plain Euclidean distances of the normalised features
    d = plain_euclidean(plain_normalise(arrays["qf"]), plain_normalise(arrays["gf"])).astype(np.float32)
    fs = rerankbench.FeatureSet("myfeats", rerankbench.Split(arrays["qf"], arrays["q_ids"], arrays["q_cams"]),
                                rerankbench.Split(arrays["gf"], arrays["g_ids"], arrays["g_cams"]))
    want = rerankbench.evaluate(d, fs)
    assert records[0]["cmc1"] == pytest.approx(want["cmc1"], abs=1e-9)
    assert records[0]["map"] == pytest.approx(want["map"], abs=1e-9)
    assert f"{want['cmc1']:.2f}" in rows[0]
    # table --records prints the same rows from the store; table prints them as Table V
    code, out2, err = run(capsys, "table", "--records", "--results", str(results))
    assert code == 0
    assert [line for line in out2.splitlines() if line.startswith("| myfeats ")] == rows
    code, out3, err = run(capsys, "table", "--results", str(results))
    assert code == 0
    (cmc1_row,) = [line for line in out3.splitlines() if line.startswith("| myfeats | CMC@1 |")]
    assert cmc1_row.split("|")[3].strip(" *_") == f"{want['cmc1']:.2f}"


@pytest.mark.parametrize("case, expected", [
    ("missing_key", "missing key(s) g_ids"),
    ("nan", "NaN"),
    ("feature_ndim", "2-D"),
    ("feature_dims", "-d"),
    ("id_count", "ids of shape"),
    ("one_cams", "q_cams and g_cams"),
    ("not_npz", "not a readable .npz"),
    ("nonexistent", "no such features file"),
])
def test_malformed_features_file(capsys, tmp_path, case, expected):
    path = tmp_path / f"bad_{case}.npz"
    if case == "missing_key":
        _features(path, g_ids=None)
    elif case == "nan":
        qf = np.ones((12, 16), np.float32)
        qf[3, 4] = np.nan
        _features(path, qf=qf)
    elif case == "feature_ndim":
        _features(path, qf=np.ones((12, 16, 1), np.float32))
    elif case == "feature_dims":
        _features(path, qf=np.ones((12, 15), np.float32))
    elif case == "id_count":
        _features(path, q_ids=np.arange(11))
    elif case == "one_cams":
        _features(path, g_cams=None)
    elif case == "not_npz":
        path.write_bytes(b"these are not features")
    results = tmp_path / "res"
    code, out, err = run(capsys, "run", "--methods", "baseline", "--features", str(path), "--results", str(results),
                         "--no-progress")
    assert code == 2
    line = one_error_line(err)
    assert str(path) in line
    assert expected in line
    assert not (results / "records.jsonl").exists()


def test_features_file_holding_one_array(capsys, tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones((4, 8), np.float32))
    code, out, err = run(capsys, "run", "--methods", "baseline", "--features", str(path), "--results",
                         str(tmp_path / "res"), "--no-progress")
    assert code == 2
    assert str(path) in one_error_line(err)


def test_list(capsys):
    code, out, err = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    for name in registry.methods():
        assert any(line.split() and line.split()[0] == name for line in lines), name
    for name in registry.datasets():
        assert any(line.split() and line.split()[0] == name for line in lines), name
    assert len(registry.methods()) == 9 and len(registry.datasets()) == 11  # market1501_500k named, not in "all"
    (aqe,) = [line for line in lines if line.split() and line.split()[0] == "aqe"]
    assert "k=N/C" in aqe
    (vid,) = [line for line in lines if line.split() and line.split()[0] == "vehicleid_small"]
    assert "k default 4" in vid and "vehicleid" in vid
    # sizes at --scale: market1501 at 0.02 has 67 queries and 318 gallery images
    code, out, err = run(capsys, "list", "--scale", "0.02")
    (market,) = [line for line in out.splitlines() if line.split() and line.split()[0] == "market1501"]
    assert "queries     67" in market and "gallery    318" in market


def test_table_on_empty_results(capsys, tmp_path):
    code, out, err = run(capsys, "table", "--results", str(tmp_path / "empty"))
    assert code == 2 and "no records" in err
    code, out, err = run(capsys, "table", "--records", "--results", str(tmp_path / "empty"))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("| dataset | method | params | CMC@1")
    assert len(lines) == 2  # header and separator only


def test_subprocess_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rerankbench", "run", "--methods", "nope", *TWIN,
                           "--results", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert one_error_line(done.stderr).startswith("error: unknown method 'nope'; registered: baseline, aqe, alpha_qe")


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".pt", ".pth", ".h5", ".hdf5", ".mat"])
@pytest.mark.parametrize("content, expected", [
    pytest.param(b"", "empty file (0 bytes)", id="empty"),
    pytest.param(np.random.default_rng(1).bytes(100), "not a readable ", id="random bytes"),
    pytest.param(None, "is a directory, not a features file", id="directory"),
])
def test_features_files_that_are_not_features(capsys, tmp_path, suffix, content, expected):
    path = tmp_path / f"feats{suffix}"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    results = tmp_path / "res"
    code, out, err = run(capsys, "run", "--methods", "baseline", "--features", str(path), "--results", str(results),
                         "--no-progress")
    assert code == 2
    assert one_error_line(err).startswith(f"error: {path}: {expected}")
    assert not (results / "records.jsonl").exists()


def test_features_file_at_any_scale_gives_the_same_records(capsys, tmp_path):
    # 1e20: the squares of the L2 norm overflowed float32 and every method scored the all-ties result;
    # 1e-30: they underflowed and the file was refused as "rows are all zero"
    metrics = []
    for factor in (1.0, 1e20, 1e-30):
        path = tmp_path / "feats.npz"
        arrays = _features(path, seed=3)
        _features(path, seed=3, qf=arrays["qf"] * np.float32(factor), gf=arrays["gf"] * np.float32(factor))
        results = tmp_path / f"res-{factor}"
        code, out, err = run(capsys, "run", "--methods", "baseline,k_reciprocal", "--features", str(path),
                             "--results", str(results), "--no-progress")
        assert code == 0, err
        records = ResultsStore(results).records()
        assert [r["status"] for r in records] == ["ok", "ok"]
        metrics.append([{key: r[key] for key in ("cmc1", "cmc5", "cmc10", "map", "minp")} for r in records])
    assert metrics[0][0]["cmc1"] > 50
    assert metrics[1] == metrics[0] and metrics[2] == metrics[0]
