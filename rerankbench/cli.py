"""Command line: python -m rerankbench {run,sweep,extract,list,table,compare,plot,report,export,...} (--help for each).

Argument parsing and dispatch only: each command's work lives in the subpackage it belongs to.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .acp.training import TrainingSettings
from .engine import registry
from .engine.contexts import CONTEXTS
from .engine.knn_backends import BACKENDS, parse_knn
from .engine.top_l import DEFAULT_L
from .features.extraction import Extraction
from .features.trials import PROTOCOLS
from .harness.loading import DataRequest, features_file_name
from .harness.runner import RunOptions, run_benchmark
from .harness.store import ResultsStore
from .runtime.messages import one_line_warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerankbench", description="Re-ranking benchmark for re-ID.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run methods on datasets and store the records")
    _run_options(run, methods="all")

    sweep = commands.add_parser("sweep", help="run methods over a range of one parameter (records as 'run' writes them)")
    sweep.add_argument("--param", required=True, help="the parameter, e.g. k1 (AQE's and alpha-QE's k), k2, lambda")
    sweep.add_argument("--values", required=True, help="START:STOP[:STEP] (inclusive) or a comma list, e.g. 1:60")
    _run_options(sweep, methods="baseline,aqe,alpha_qe,k_reciprocal")

    ablation = commands.add_parser("ablation", help="ACP's module ablation (paper Table VII): the baseline, AQE and "
                                   "ACP in experiments A-G, at k1 = 25, k2 = 6 unless --set; 'report' tabulates it")
    _run_options(ablation, methods="baseline,acp")

    extract = commands.add_parser("extract", help="extract the features of real datasets into the cache (run reuses them)")
    extract.add_argument("--datasets", required=True, help="comma list of test sets or families ('veriwild'), or 'all'")
    extract.add_argument("--data-root", required=True, metavar="DIR", help="the folder holding the datasets' released folders")
    extract.add_argument("--with-train", action="store_true", help="also the train split")
    extract.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    extract.add_argument("--no-progress", action="store_true", help="no progress bars")
    _extraction_options(extract, checkpoint_required=True)
    _results_option(extract)

    training = commands.add_parser("train", help="train a learned re-ranker on a dataset's train split "
                                   "(checkpoints under RESULTS/cache/acp/; run reuses them)")
    training.add_argument("--method", required=True, choices=["acp"])
    training.add_argument("--dataset", help="a test set; its family's train split is used (not with --features)")
    training.add_argument("--scale", type=float, default=0.1, help="fraction of the twin's full size (default 0.1)")
    training.add_argument("--preset", choices=["auto", "basic", "xl"], help="ACP-Basic or ACP-XL (default auto: "
                          "XL for train splits of 100,000 images or more, as the paper's VERI-Wild and VehicleID)")
    training.add_argument("--epochs", type=int, help=f"default {TrainingSettings.epochs}")
    training.add_argument("--set", action="append", default=[], metavar="acp.PARAM=VALUE",
                          help="any other parameter, e.g. acp.epoch_size=8000, acp.heads=4, acp.seed=1")
    training.add_argument("--features", metavar="FILE", help="a features file with a train split (keys tf, t_ids)")
    training.add_argument("--data-root", metavar="DIR", help="the real dataset in DIR (needs --checkpoint)")
    training.add_argument("--seed", type=int, default=0, help="the twin's seed")
    training.add_argument("--dim", type=int, default=2048, help="feature dimension of the twins")
    training.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    training.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    training.add_argument("--no-progress", action="store_true", help="no progress bars")
    _extraction_options(training)
    _results_option(training)

    commands.add_parser("model-figures", help="ACP's parameters and MACs per sequence beside the paper's Table III")

    listing = commands.add_parser("list", help="registered methods and datasets, with their defaults")
    listing.add_argument("--scale", type=float, default=1.0, help="scale at which to report the twins' sizes")

    table = commands.add_parser("table", help="the paper's Table V from the stored records (default parameters)")
    table.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    table.add_argument("--paper", action="store_true", help="the paper's numbers and our difference beside ours")
    table.add_argument("--records", action="store_true", help="instead: every record, one row each")
    table.add_argument("--significance", action="store_true", help="mark (†) the cells not significantly different "
                       "from their row's best: paired randomisation test over queries, Holm-corrected across the row")
    _results_option(table)

    compare = commands.add_parser("compare", help="whether two methods differ on a test set: a paired randomisation "
                                  "test and a paired bootstrap 95%% interval of the difference, over its queries")
    compare.add_argument("--dataset", required=True, help="the test set, e.g. msmt17")
    compare.add_argument("--methods", required=True, metavar="A,B", help="two methods; the difference is A's minus B's")
    compare.add_argument("--metric", choices=("map", "cmc1", "cmc5"), help="default: map (cmc1 on VehicleID)")
    compare.add_argument("--scale", type=float, help="the twins' scale, where the test set was run at several")
    compare.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                         help="compare the record with these parameters set (default: the method's defaults)")
    compare.add_argument("--context", choices=CONTEXTS, default="all", help="the records of this context (default all)")
    compare.add_argument("--rounds", type=int, default=10_000, help="rounds of each test (default and least 10,000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the tests' random numbers")
    compare.add_argument("--json", action="store_true", help="print one JSON object instead")
    _results_option(compare)

    plot = commands.add_parser("plot", help="the sensitivity plots (Figs. 10-12) of the sweeps in the stored records")
    plot.add_argument("--output", help="folder for the figures (default: RESULTS/figures)")
    _results_option(plot)

    report = commands.add_parser("report", help="regenerate every table and plot under the results folder")
    report.add_argument("--html", action="store_true", help="also report.html in each record set: one self-contained "
                        "page with Table V, the significance marks, the figures and the provenance")
    _results_option(report)

    export = commands.add_parser("export", help="copy chosen records into a new record set folder, and report on it")
    export.add_argument("--output", required=True, metavar="DIR", help="the new set, e.g. results/full_scale")
    export.add_argument("--methods", default="all")
    export.add_argument("--datasets", default="all")
    export.add_argument("--scale", type=float, help="only twins at this scale")
    export.add_argument("--per-query", action="store_true", help="also per_query.csv: every query of every "
                        "exported record (its AP, INP, first-hit rank, ...), one row each")
    _results_option(export)

    calibrate = commands.add_parser("calibrate", help="fit the twins to the paper (its baseline, or its whole table), or check them")
    calibrate.add_argument("--fit", action="store_true", help="search each twin's noise and quality spread")
    calibrate.add_argument("--check", action="store_true", help="measure every full-scale twin and write docs/calibration.md")
    calibrate.add_argument("--datasets", default="all")
    calibrate.add_argument("--output", default="docs/calibration.md")
    calibrate.add_argument("--records", action="append", default=[], metavar="SCALE=FOLDER",
                           help="with --check: the record set holding Table V at SCALE (default: 1=results/full_scale "
                                "and 0.1=results/default_run)")
    calibrate.add_argument("--sweeps", metavar="FOLDER",
                           help="with --check: the record set holding the k1 sweeps (default results/sweeps)")
    calibrate.add_argument("--fit-table", action="store_true", help="fit each twin to the paper's whole table (the "
                           "fitted methods' cells and k1 curves) and store the fit in --fits, not adopted")
    calibrate.add_argument("--table-only", action="store_true", help="with --fit-table: fit Table V's cells alone, "
                           "without the k1 curves of Figs. 10-11 (4 runs a twin instead of up to 28: a quicker full-scale fit)")
    calibrate.add_argument("--fit-train", action="store_true", help="fit the train split of each twin's family to the "
                           "paper's Table VI (the baseline on the training set), from the test set's model; stored in "
                           "--fits as <family>/train, not adopted")
    calibrate.add_argument("--scale", type=float, default=0.1, help="with --fit-table, --fit-train or --ablate: the "
                           "twins' scale (default 0.1)")
    calibrate.add_argument("--search", choices=("evolution", "nelder-mead"), default="evolution",
                           help="with --fit-table or --fit-train: differential evolution then Nelder-Mead, or Nelder-Mead alone")
    calibrate.add_argument("--evaluations", type=int, default=400, help="with --fit-table or --fit-train: twins made in all")
    calibrate.add_argument("--terms", help="with --fit-table or --fit-train: the model's terms to fit, a comma list "
                           "(default: every continuous term: noise, view_share, ..., hard_signal; with --fit-train: "
                           "noise, view_share, group_similarity, nuisance)")
    calibrate.add_argument("--start", default="registered", metavar="registered|SCALE", help="with --fit-table or "
                           "--ablate: start from the registered model, or from the stored fit at SCALE; with --fit-train: "
                           "from the test set's model at --scale (its adopted fit where it has one), or the stored train "
                           "fit at SCALE")
    calibrate.add_argument("--set", action="append", default=[], metavar="TERM=VALUE",
                           help="with --fit-table, --fit-train or --ablate: set a term of the starting model, e.g. identity_rank=16")
    calibrate.add_argument("--ablate", action="store_true", help="each twin's model (see --start, --set) as it is and "
                           "with one term off at a time: baseline, AQE, SCA, GNN at --scale")
    calibrate.add_argument("--fits", metavar="FILE", help="with --fit-table, --fit-train or --ablate: where fits are stored (default: "
                           "the package's data/twin_fits.json)")

    bench = commands.add_parser("benchmark", help="time the shared steps against the bare products (writes results/benchmarks/)")
    bench.add_argument("--dataset", default="msmt17")
    bench.add_argument("--scale", type=float, default=1.0)
    bench.add_argument("--k", type=int, default=100)
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--output", default="results/benchmarks")

    knn_bench = commands.add_parser("knn-benchmark", help="the kNN graph's builds side by side: exact, screened, "
                                    "ivf, hnsw (writes results/benchmarks/)")
    knn_bench.add_argument("--dataset", default="msmt17")
    knn_bench.add_argument("--scale", type=float, default=1.0)
    knn_bench.add_argument("--k", type=int, default=100)
    knn_bench.add_argument("--rows", type=int, help="the first ROWS rows of X only (default: all)")
    knn_bench.add_argument("--note", default="", help="a remark for the report, e.g. on other load on the machine")
    knn_bench.add_argument("--backends", help="the faiss backends built beside the exact graphs, "
                           "a comma list, or 'none' (default ivf,hnsw)")
    knn_bench.add_argument("--output", default="results/benchmarks")

    sweep = commands.add_parser("ann-sweep", help="an approximate kNN graph's recall@K against its time over the "
                                "values of efSearch (hnsw) or nprobe (ivf), one index (writes results/benchmarks/)")
    sweep.add_argument("--dataset", default="veriwild_large")
    sweep.add_argument("--scale", type=float, default=1.0)
    sweep.add_argument("--k", type=int, default=100)
    sweep.add_argument("--backend", default="hnsw", help="hnsw (sweeps efSearch) or ivf (sweeps nprobe)")
    sweep.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="another parameter of the index, e.g. M=48 (repeatable)")
    sweep.add_argument("--values", default="64,128,256,512,1024", help="the swept setting's values, a comma list")
    sweep.add_argument("--sample", type=int, default=2000, help="seeded rows searched per value (default 2000)")
    sweep.add_argument("--no-screened", action="store_true", help="time the plain exact graph only")
    sweep.add_argument("--note", default="", help="a remark for the report, e.g. on other load on the machine")
    sweep.add_argument("--output", default="results/benchmarks")

    _acp_twin_options(commands.add_parser("acp-benchmark", help="ACP's training and re-ranking time against the "
                                          "budgets (writes results/benchmarks/)"), "msmt17")
    _acp_twin_options(commands.add_parser("acp-weights", help="ACP's eq. 1 with its s, s's mean per rank, uniform and "
                                          "oracle weights over the same sequences (writes results/benchmarks/)"), "market1501")

    speed = commands.add_parser("extraction-benchmark", help="time feature extraction in images/s (writes results/benchmarks/)")
    speed.add_argument("--images", type=int, default=64)
    speed.add_argument("--batch-size", type=int, default=32)
    speed.add_argument("--image-size", default="256x128", metavar="HxW")
    speed.add_argument("--flip", action="store_true")
    speed.add_argument("--device", default="cpu")
    speed.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    speed.add_argument("--note", default="", help="a remark for the report, e.g. on other load on the machine")
    speed.add_argument("--output", default="results/benchmarks")

    gpu = commands.add_parser("gpu-check", help="everything that needs CUDA: the CUDA tests, every method and kNN "
                              "backend on a full-size twin (writes results/benchmarks/gpu_check.md; no GPU: exits 0)")
    gpu.add_argument("--dataset", default="market1501")
    gpu.add_argument("--scale", type=float, default=1.0)
    gpu.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the check without a GPU")
    gpu.add_argument("--no-tests", action="store_true", help="skip the CUDA-parametrised tests")
    gpu.add_argument("--output", default="results/benchmarks")

    reference = commands.add_parser("compare-reference",
                                    help="k-reciprocal against the public reference implementation (writes results/benchmarks/)")
    reference.add_argument("--reference", required=True, metavar="FILE",
                           help="re_ranking_ranklist.py from a checkout of zhunzhong07/person-re-ranking")
    reference.add_argument("--dataset", default="market1501")
    reference.add_argument("--scale", type=float, default=1.0)
    reference.add_argument("--output", default="results/benchmarks")
    _results_option(reference)

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    one_line_warnings()
    args.command_line = shlex.join(["python", "-m", "rerankbench", *argv])  # stored in the records
    try:
        commands = {"run": _run, "sweep": _run, "ablation": _run, "extract": _extract, "list": _list, "table": _table,
                    "compare": _compare,
                    "plot": _plot, "report": _report, "export": _export, "calibrate": _calibrate, "benchmark": _benchmark,
                    "extraction-benchmark": _extraction_benchmark, "compare-reference": _compare_reference,
                    "train": _train, "model-figures": _model_figures, "acp-benchmark": _acp_benchmark, "acp-weights": _acp_weights,
                    "knn-benchmark": _knn_benchmark, "ann-sweep": _ann_sweep, "gpu-check": _gpu_check}
        return commands[args.command](args)
    except (ValueError, OSError) as error:  # FeatureError, StoreError, DamagedFile are ValueErrors
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2


def _run_options(parser, methods: str) -> None:
    parser.add_argument("--methods", default=methods, help=f"comma list of methods, or 'all' (default {methods}; see 'list')")
    parser.add_argument("--datasets", default="all", help="comma list of test sets or families ('veriwild'), or 'all'")
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of each twin's full size (default 0.1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE", help="override a parameter")
    parser.add_argument("--features", metavar="FILE", help="run on your own features: .npz, .npy, .pt, .h5 or .mat "
                        "(keys qf, gf, q_ids, g_ids[, q_cams, g_cams] or pytorch_result.mat's query_f, gallery_f, ...)")
    parser.add_argument("--data-root", metavar="DIR", help="run on the real datasets in DIR (needs --checkpoint)")
    parser.add_argument("--protocol", choices=PROTOCOLS, help="evaluation protocol (default: the dataset's own)")
    parser.add_argument("--context", choices=CONTEXTS, default="all", help="all: queries and gallery form X together "
                        "(transductive, the paper's setting; default); gallery: each query re-ranked against the "
                        "gallery alone, as if it arrived alone (inductive)")
    parser.add_argument("--knn", choices=BACKENDS, default="exact", help="the kNN graph: exact (default, the "
                        "reference), or faiss's flat (exact), ivf or hnsw (approximate: recall recorded)")
    parser.add_argument("--knn-param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter of the kNN backend, e.g. nprobe=32, efSearch=128, screen=bf16 (repeatable)")
    parser.add_argument("--top-l", type=int, metavar="L", help="re-rank each query's top L baseline candidates, the "
                        f"rest in baseline order (default: L = {DEFAULT_L} when the M x N distances exceed the budget)")
    parser.add_argument("--matrix-budget", type=float, metavar="MB", help="the M x N distances' budget before top-L "
                        "re-ranking is chosen (default: a quarter of the RAM)")
    parser.add_argument("--distractors", type=int, default=0, metavar="N", help="add N generated distractor images "
                        "(identity 0) to each twin's gallery")
    parser.add_argument("--trials", type=int, default=1, help="repetitions of each cell (timing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension of the twins")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS", help="a cell over this becomes a failed record")
    parser.add_argument("--memory-limit", type=float, metavar="MB", help="a cell whose RSS exceeds this becomes a failed record")
    parser.add_argument("--force", action="store_true", help="re-run cells that already have a record")
    parser.add_argument("--skip-failed", action="store_true", help="a failed cell counts as done (by default a cell "
                        "that failed for the machine or the cache -- killed, out of time or memory -- runs again)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="where the cells run: worker processes here (default), or tasks on a Ray cluster")
    parser.add_argument("--address", help="with --executor ray: the cluster, e.g. 'auto' or HOST:6379 "
                        "(default: a new local Ray instance)")
    parser.add_argument("--cpus-per-cell", type=int, metavar="N", help="with --executor ray: the cores each "
                        "cell's task reserves and uses (default: --threads, else all cores of a node; 1 with a GPU)")
    _extraction_options(parser)
    _results_option(parser)


def _extraction_options(parser, checkpoint_required: bool = False) -> None:
    parser.add_argument("--checkpoint", metavar="FILE", required=checkpoint_required,
                        help="ResNet-50 checkpoint (torchvision, fast-reid or torchreid keys) to extract features with")
    parser.add_argument("--last-stride", type=int, choices=(1, 2), default=1, help="stride of layer4 (default 1, fast-reid's BoT)")
    parser.add_argument("--flip", action="store_true", help="average each image's features with its mirror image's")
    parser.add_argument("--image-size", metavar="HxW", help="input size (default 256x128 persons, 256x256 vehicles)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--allow-partial-checkpoint", action="store_true",
                        help="use a checkpoint whose backbone keys do not all fit (they are reported)")


def _extraction(args, device: str = "auto") -> Extraction | None:
    """The extraction options, when a checkpoint is given (RunOptions and DataRequest check that
    it comes with --data-root)."""
    if not args.checkpoint:
        return None
    size = _image_size(args.image_size) if args.image_size else None
    return Extraction(args.checkpoint, args.last_stride, args.flip, size, args.batch_size, args.allow_partial_checkpoint,
                      device)


def _image_size(text: str) -> tuple[int, int]:
    height, x, width = text.partition("x")
    if not (x and height.isdigit() and width.isdigit()):
        raise ValueError(f"--image-size {text!r}: expected HEIGHTxWIDTH, e.g. 256x128")
    return int(height), int(width)


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
    from .acp.ablation import ablation_cells
    from .harness.sweep import parse_values, sweep_cells
    from .reports.tables import markdown_table
    method_names = registry.select(args.methods, registry.methods(), "method")
    if args.features:
        dataset_names = [features_file_name(args.features)]
    else:
        dataset_names = registry.select(args.datasets, registry.datasets(), "dataset")
    params = parse_settings(args.set, method_names)
    if args.command == "sweep":
        cells = sweep_cells(method_names, args.param, parse_values(args.values), params)
    elif args.command == "ablation":
        cells = ablation_cells(params.get("acp", {}))
    else:
        cells = [(name, params[name]) for name in method_names]
    options = RunOptions(args.results, args.scale, args.seed, args.dim, args.device, args.threads, args.time_limit,
                         args.memory_limit, args.force, args.features, args.protocol, not args.no_progress,
                         args.command_line, args.data_root, _extraction(args), args.executor, args.address,
                         args.cpus_per_cell, args.skip_failed, args.context, parse_knn(args.knn, args.knn_param),
                         args.top_l, args.matrix_budget, args.distractors)
    try:
        records = run_benchmark(dataset_names, cells, options, args.trials)
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished record is kept in {ResultsStore(args.results).path}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    print(markdown_table(records))
    failed = sum(record["status"] != "ok" for record in records)
    print(f"{len(records) - failed} of {len(records)} cells ok" + (
        f", {failed} failed: their records say why; the same command runs again those that failed for the "
        "machine or the cache" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _extract(args) -> int:
    extraction = _extraction(args, args.device)
    for name in registry.select(args.datasets, registry.datasets(), "dataset"):
        request = DataRequest(name, cache_dir=str(Path(args.results) / "cache"), show_progress=not args.no_progress,
                              data_root=args.data_root, extraction=extraction, with_train=args.with_train)
        print(request.load(log=_log).summary())
    return 0


def _train(args) -> int:
    import torch

    from .harness.training import train
    params = parse_settings(args.set, [args.method])[args.method]
    params.update({name: value for name, value in (("preset", args.preset), ("epochs", args.epochs)) if value is not None})
    method = registry.method(args.method, **params)
    _set_threads(args.threads)
    if bool(args.features) == bool(args.dataset):
        raise ValueError("give --dataset (a twin, or a real dataset with --data-root) or --features, one of them")
    dataset = features_file_name(args.features) if args.features else \
        registry.select(args.dataset, registry.datasets(), "dataset")[0]
    request = DataRequest(dataset, args.scale, args.seed, args.dim, args.features, None, str(Path(args.results) / "cache"),
                          not args.no_progress, args.data_root, _extraction(args), with_train=True)
    training = train(method, request, args.device, _log)
    final = f"final loss {training['final_loss']:.4f}" if training["final_loss"] is not None else "no epochs"
    print(f"{training['checkpoint']}: {training['epochs_done']} epochs, {final}, "
          f"{training['training_seconds']:.0f} s of training")
    return 0


def _model_figures(args) -> int:
    from .acp.figures import DIFFERENCES, figures_table
    print(figures_table())
    print(f"\n{DIFFERENCES}")
    return 0


def _list(args) -> int:
    from .reports.listing import listing
    print(listing(args.scale))
    return 0


def _table(args) -> int:
    from .reports.paper_table import build_table
    from .reports.table_formats import render
    from .reports.tables import markdown_table
    if args.records:  # a row per record: an empty table when there are none
        print(markdown_table(ResultsStore(args.results).results()))
        return 0
    table = build_table(_records(args.results), args.paper)
    if args.significance:
        from .reports.comparison import mark_significance
        mark_significance(table, args.results)
    print(render(table, args.format), end="")
    return 0


def _compare(args) -> int:
    from .reports.comparison import compare
    methods = registry.select(args.methods, registry.methods(), "method")
    comparison = compare(_records(args.results), args.results, args.dataset, methods, args.metric, args.scale,
                         args.rounds, args.seed, parse_settings(args.set, methods), args.context)
    print(comparison.as_json() if args.json else comparison.describe())
    return 0


def _plot(args) -> int:
    from .reports.plots import draw_sweeps
    print("\n".join(map(str, draw_sweeps(_records(args.results), args.output or Path(args.results) / "figures"))))
    return 0


def _report(args) -> int:
    from .reports.report import regenerate
    written = regenerate(args.results, args.html)
    if not written:
        raise ValueError(f"no records under {args.results}/")
    print("\n".join(map(str, written)))
    return 0


def _export(args) -> int:
    from .reports.report import export_set
    methods = registry.select(args.methods, registry.methods(), "method")
    datasets = None if args.datasets == "all" else registry.select(args.datasets, registry.datasets(), "dataset")
    print("\n".join(map(str, export_set(ResultsStore(args.results).results(), args.output, datasets, methods, args.scale,
                                         args.results, args.per_query))))
    return 0


def _calibrate(args) -> int:
    names = registry.select(args.datasets, registry.datasets(), "dataset")
    if args.ablate:
        from .calibration.table_command import ablate
        ablate(names, args.scale, args.start, args.set, args.fits)
        return 0
    if args.fit_table or args.fit_train:
        from .calibration.table_command import fit_tables, fit_trains
        fit_args = (names, args.scale, args.search, args.evaluations, args.terms, args.start, args.set, args.fits,
                    args.command_line)
        if args.fit_table:
            fit_tables(*fit_args, table_only=args.table_only)
        else:
            fit_trains(*fit_args)
        if not (args.fit or args.check):
            return 0
    from .calibration.report import run_calibration
    record_sets = None
    if args.records:
        pairs = [item.partition("=") for item in args.records]
        if any(not sep or not folder for _, sep, folder in pairs):
            raise ValueError(f"--records takes SCALE=FOLDER, e.g. 1=results/full_scale; got {' '.join(args.records)}")
        record_sets = {float(scale): folder for scale, _, folder in pairs}
    return run_calibration(names, args.fit, args.check, args.output, record_sets, args.sweeps)


def _benchmark(args) -> int:
    from .benchmarks.shared_steps import run
    run(args.dataset, args.scale, args.k, args.device, args.output)
    return 0


def _knn_benchmark(args) -> int:
    from .benchmarks.knn_graphs import FAISS_BACKENDS, run
    backends = FAISS_BACKENDS if args.backends is None else tuple(b for b in args.backends.split(",") if b not in ("", "none"))
    run(args.dataset, args.scale, args.k, args.rows, backends, note=args.note, output=args.output)
    return 0


def _ann_sweep(args) -> int:
    from .benchmarks.ann_sweep import run
    try:
        values = [int(v) for v in args.values.split(",") if v]
    except ValueError:
        raise ValueError(f"--values takes whole numbers separated by commas, got {args.values!r}") from None
    run(args.dataset, args.backend, values, args.param, args.scale, args.k, args.sample, not args.no_screened,
        note=args.note, output=args.output)
    return 0


def _gpu_check(args) -> int:
    from .benchmarks.gpu_check import run
    return run(args.dataset, args.scale, args.device, not args.no_tests, args.output)


def _acp_twin_options(parser, dataset: str) -> None:
    """The options of the commands that measure ACP on one twin (acp-benchmark, acp-weights)."""
    parser.add_argument("--dataset", default=dataset)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--set", action="append", default=[], metavar="acp.PARAM=VALUE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--output", default="results/benchmarks")
    _results_option(parser)


def _acp_benchmark(args) -> int:
    import torch

    from .benchmarks.acp_budgets import run
    _set_threads(args.threads)
    run(args.dataset, args.scale, parse_settings(args.set, ["acp"])["acp"], args.device, args.results, args.output)
    return 0


def _acp_weights(args) -> int:
    from .benchmarks.acp_weights import run
    _set_threads(args.threads)
    run(args.dataset, args.scale, parse_settings(args.set, ["acp"])["acp"], args.device, args.results, args.output)
    return 0


def _extraction_benchmark(args) -> int:
    from .benchmarks.extraction_speed import run
    height, width = _image_size(args.image_size)
    run(args.images, args.batch_size, height, width, args.flip, args.device, args.threads, args.note, args.output)
    return 0


def _compare_reference(args) -> int:
    from .benchmarks.reference_comparison import compare
    compare(args.reference, args.dataset, args.scale, str(Path(args.results) / "cache"), args.output)
    return 0


def _set_threads(threads: int | None) -> None:
    """torch's threads for the work done in this process (None: torch's default)."""
    import torch
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def _records(results: str) -> list[dict]:
    store = ResultsStore(results)
    records = store.results()
    if not records:
        raise ValueError(f"no records in {store.path}")
    return records


def _one_line(error: Exception) -> str:
    """The error as one line: an OSError from the system as "<file>: <reason>"."""
    if isinstance(error, OSError) and error.strerror:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
        return f"{names}: {error.strerror}" if names else error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _log(line: str) -> None:
    print(line, file=sys.stderr)
