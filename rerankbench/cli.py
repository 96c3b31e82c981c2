"""Command line: python -m rerankbench {run,list,table,calibrate,benchmark} ... (--help for each)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import registry
from .featureset import FeatureError
from .harness import RunOptions, run_benchmark
from .loading import features_file_name
from .protocols import PROTOCOLS
from .store import ResultsStore
from .tables import markdown_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerankbench", description="Re-ranking benchmark for re-ID.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run methods on datasets and store the records")
    run.add_argument("--methods", default="all", help="comma list of methods, or 'all' (see 'list')")
    run.add_argument("--datasets", default="all", help="comma list of test sets or families ('veriwild'), or 'all'")
    run.add_argument("--scale", type=float, default=0.1, help="fraction of each twin's full size (default 0.1)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    run.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE", help="override a parameter")
    run.add_argument("--features", metavar="FILE.npz", help="run on your own features (keys qf, gf, q_ids, g_ids, q_cams, g_cams)")
    run.add_argument("--protocol", choices=PROTOCOLS, help="evaluation protocol (default: the dataset's own)")
    run.add_argument("--trials", type=int, default=1, help="repetitions of each cell (timing)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--dim", type=int, default=2048, help="feature dimension of the twins")
    run.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    run.add_argument("--time-limit", type=float, metavar="SECONDS", help="a cell over this becomes a failed record")
    run.add_argument("--memory-limit", type=float, metavar="MB", help="a cell whose RSS exceeds this becomes a failed record")
    run.add_argument("--force", action="store_true", help="re-run cells that already have a record")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    _results_option(run)

    listing = commands.add_parser("list", help="registered methods and datasets, with their defaults")
    listing.add_argument("--scale", type=float, default=1.0, help="scale at which to report the twins' sizes")

    table = commands.add_parser("table", help="a Markdown table of the stored records")
    _results_option(table)

    calibrate = commands.add_parser("calibrate", help="fit the twins to the paper's baseline, or check them")
    calibrate.add_argument("--fit", action="store_true", help="search each twin's noise and quality spread")
    calibrate.add_argument("--check", action="store_true", help="measure every full-scale twin and write docs/calibration.md")
    calibrate.add_argument("--datasets", default="all")
    calibrate.add_argument("--output", default="docs/calibration.md")

    bench = commands.add_parser("benchmark", help="time the shared steps against the bare products (writes results/benchmarks/)")
    bench.add_argument("--dataset", default="msmt17")
    bench.add_argument("--scale", type=float, default=1.0)
    bench.add_argument("--k", type=int, default=100)
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--output", default="results/benchmarks")

    reference = commands.add_parser("compare-reference",
                                    help="k-reciprocal against the public reference implementation (writes results/benchmarks/)")
    reference.add_argument("--reference", required=True, metavar="FILE",
                           help="re_ranking_ranklist.py from a checkout of zhunzhong07/person-re-ranking")
    reference.add_argument("--dataset", default="market1501")
    reference.add_argument("--scale", type=float, default=1.0)
    reference.add_argument("--output", default="results/benchmarks")
    _results_option(reference)

    scale_report = commands.add_parser("scale-report", help="time and peak RSS of every method and twin, from the records")
    scale_report.add_argument("--methods", default="all")
    scale_report.add_argument("--scale", type=float, default=1.0)
    scale_report.add_argument("--output", default="results/benchmarks/full_scale.md")
    scale_report.add_argument("--run-command", default=None, help="the run command the records came from (quoted in the report)")
    _results_option(scale_report)

    args = parser.parse_args(argv)
    try:
        commands = {"run": _run, "list": _list, "table": _table, "calibrate": _calibrate, "benchmark": _benchmark,
                    "compare-reference": _compare_reference, "scale-report": _scale_report}
        return commands[args.command](args)
    except (ValueError, FeatureError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _results_option(parser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results/)")


def parse_settings(settings: list[str], method_names: list[str]) -> dict[str, dict]:
    """--set METHOD.PARAM=VALUE (repeatable) -> {method: {param: value}}."""
    params: dict[str, dict] = {name: {} for name in method_names}
    for setting in settings:
        key, equals, value = setting.partition("=")
        name, dot, param = key.partition(".")
        if not (equals and dot and name and param):
            raise ValueError(f"--set {setting!r}: expected METHOD.PARAM=VALUE, e.g. aqe.k=10")
        if name not in params:
            raise ValueError(f"--set {setting!r}: method {name!r} is not among the methods run ({', '.join(method_names)})")
        params[name][param] = value
    for name, values in params.items():
        registry.method(name, **values)  # unknown parameters fail here, before any work
    return params


def _run(args) -> int:
    method_names = registry.select(args.methods, registry.methods(), "method")
    if args.features:
        dataset_names = [features_file_name(args.features)]
    else:
        dataset_names = registry.select(args.datasets, registry.datasets(), "dataset")
    params = parse_settings(args.set, method_names)
    options = RunOptions(args.results, args.scale, args.seed, args.dim, args.device, args.threads, args.time_limit,
                         args.memory_limit, args.force, args.features, args.protocol, not args.no_progress)
    try:
        records = run_benchmark(dataset_names, [(name, params[name]) for name in method_names], options, args.trials)
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished record is kept in {ResultsStore(args.results).path}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    print(markdown_table(records))
    return 0


def _list(args) -> int:
    print("methods:")
    for name, cls in registry.methods().items():
        defaults = ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "no parameters"
        print(f"  {name:<24} {defaults}")
    print(f"datasets (twin sizes at scale {args.scale:g}; N/C = the default k):")
    for name, dataset in registry.datasets().items():
        q, g = dataset.query.scaled(args.scale), dataset.gallery.scaled(args.scale)
        print(f"  {name:<18} {dataset.title:<20} queries {q.images:>6}  gallery {g.images:>6}  "
              f"protocol {dataset.protocol:<9} k default {dataset.k_override or round(g.images / g.ids)}")
    print("families: veriwild, vehicleid (their small/medium/large test sets); 'all'")
    return 0


def _table(args) -> int:
    print(markdown_table(ResultsStore(args.results).records()))
    return 0


def _calibrate(args) -> int:
    from .calibration_report import run_calibration
    return run_calibration(registry.select(args.datasets, registry.datasets(), "dataset"), args.fit, args.check, args.output)


def _benchmark(args) -> int:
    from .benchmark import run
    run(args.dataset, args.scale, args.k, args.device, args.output)
    return 0


def _compare_reference(args) -> int:
    from .reference_comparison import compare
    compare(args.reference, args.dataset, args.scale, str(Path(args.results) / "cache"), args.output)
    return 0


def _scale_report(args) -> int:
    from .scale_report import write_report
    methods = registry.select(args.methods, registry.methods(), "method")
    command = args.run_command or f"python -m rerankbench run --methods {args.methods} --datasets all --scale {args.scale:g}"
    print(write_report(ResultsStore(args.results).records(), args.output, command, args.scale, methods))
    return 0
