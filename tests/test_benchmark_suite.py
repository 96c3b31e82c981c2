"""The benchmark suite still works: every benchmark runs once, untimed, on a tiny twin."""
import os
import subprocess
import sys
from pathlib import Path

from rerankbench.engine import registry

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_on_a_tiny_twin(tmp_path):
    env = {**os.environ, "RERANKBENCH_BENCHMARK_SMOKE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "benchmarks" / "test_benchmarks.py"),
                           "--benchmark-disable", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = len(registry.methods()) + 3  # every method, the kNN graph, the evaluation and compare's tests
    assert f"{expected} passed" in done.stdout, done.stdout[-3000:]
