"""``xfw grid`` and ``xfw heatmap``.

``xfw grid`` takes its options from ``--config FILE.toml`` and/or the command line
(the command line wins). List options take several values or one comma-separated
value (``--eta 0.1 0.01`` or ``--eta 0.1,0.01``). Every value is checked before any
training; a bad one prints ``xfw: error: --option: ...`` (one line) and exits 2.
Exit status: 0 when every cell is ok or diverged, 1 when some cell failed or workers
kept dying, 2 on a bad option, a damaged results file or a run already in use, 130 on
Ctrl-C and 143 on SIGTERM (the same command resumes).
"""
from __future__ import annotations

import os
import sys

from ..errors import UsageError
from ..grid.config import DEFAULT_GRID, EXECUTORS, GridConfig
from ..options import split_list
from ..runtime import FRAMEWORKS
from .args import positive_int


def register(sub) -> None:
    from scratch import architectures
    from scratch.optimizers import OPTIMIZERS

    from .. import datasets

    grid_default = ", ".join(f"{v:g}" for v in DEFAULT_GRID)
    p = sub.add_parser(
        "grid", help="eta x lambda grid search in every framework, resumable",
        description="Train a fresh model for every (framework, eta, lambda, seed) and record the results in "
                    "OUT/RUN/ (manifest.json, cells.csv, curves.csv, heatmaps, report.md). Rerunning the same "
                    "command skips finished cells.")
    p.add_argument("--config", metavar="FILE", help="TOML file with the options below (the command line wins)")
    p.add_argument("--arch", help=f"architecture: {', '.join(architectures.names())} (default course_cnn)")
    p.add_argument("--dataset", help=f"data set: {', '.join(datasets.DATASETS)} (default digits; mnist needs --data)")
    p.add_argument("--data", metavar="PATH",
                   help="mnist.npz, a folder of the four MNIST IDX files (or a torchvision MNIST root), "
                        "IMAGES,LABELS IDX files, or CSV (one file, TRAIN.csv,TEST.csv, or a folder)")
    p.add_argument("--limit", type=positive_int, help="keep only the first LIMIT samples")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="sample shape of the synthetic data set (default 1,8,8; 1,28,28 for lenet)")
    p.add_argument("--frameworks", nargs="+", metavar="NAME",
                   help=f"any of {', '.join(FRAMEWORKS)} (default all three)")
    p.add_argument("--eta", nargs="+", metavar="ETA", help=f"learning rates > 0 (default {grid_default})")
    p.add_argument("--lmbda", nargs="+", metavar="LAMBDA",
                   help=f"L2 factors >= 0, as Keras's l2(lambda) (default {grid_default})")
    p.add_argument("--epochs", type=positive_int, help="epochs per cell (default 100)")
    p.add_argument("--batch-size", type=positive_int, help="default 100")
    p.add_argument("--optimizer", help=f"{', '.join(OPTIMIZERS)} (default sgd)")
    p.add_argument("--seeds", nargs="+", metavar="SEED", help="one or more seeds (repeats; default 0)")
    p.add_argument("--dtype", help="float32 or float64 (default float32)")
    p.add_argument("--flavor", help="whose optimizer rule the scratch engine follows: keras or torch (default keras)")
    p.add_argument("--init", help="initial weights: scratch (the same in every framework, default) or native")
    p.add_argument("--train-eval", metavar="WHEN",
                   help="every: train loss and accuracy after every epoch (default); last: only after the last "
                        "(the curves keep the running training loss and the test metrics; faster)")
    p.add_argument("--workers", type=positive_int,
                   help=f"worker processes (default: the number of CPUs, {os.cpu_count()})")
    p.add_argument("--executor", help=f"{', '.join(EXECUTORS)} (default population)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler, tcp://HOST:PORT (with --executor dask; default: a local cluster)")
    p.add_argument("--run", metavar="NAME", help="run name (default: the config file's name, or ARCH-DATASET)")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/)")
    p.add_argument("--no-figures", action="store_true", help="do not draw heatmaps or write the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("heatmap", help="draw the heatmaps and the report of a grid run")
    p.add_argument("run", metavar="RUN", help="a run folder, or a run name under --out")
    p.add_argument("--out", metavar="DIR", default="results", help="results folder (default results/)")
    p.set_defaults(func=cmd_heatmap)


def _numbers(option, values, kind):
    if values is None:
        return None
    out = []
    for text in values:
        try:
            out.append(kind(text))
        except ValueError:
            what = "a number" if kind is float else "an integer"
            raise UsageError(f"{option}: {text!r} is not {what}") from None
    return tuple(out)


def config_from_args(args) -> GridConfig:
    """The config of ``--config`` (or the defaults) with the command line's options on top."""
    base = GridConfig.from_toml(args.config) if args.config else GridConfig()
    frameworks = split_list(args.frameworks)
    overrides = {
        "arch": args.arch, "dataset": args.dataset, "data": args.data, "limit": args.limit,
        "input_shape": args.input_shape,
        "frameworks": None if frameworks is None else tuple(frameworks),
        "etas": _numbers("--eta", split_list(args.eta), float),
        "lmbdas": _numbers("--lmbda", split_list(args.lmbda), float),
        "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer,
        "seeds": _numbers("--seeds", split_list(args.seeds), int), "dtype": args.dtype, "flavor": args.flavor,
        "init": args.init, "train_eval": args.train_eval, "workers": args.workers, "executor": args.executor,
        "scheduler": args.scheduler,
        "run": args.run, "out": args.out,
    }
    return base.merged(overrides)


def cmd_grid(args) -> int:
    from ..grid import GridAborted, GridInterrupted, run_grid

    config = config_from_args(args)
    try:
        summary = run_grid(config, progress=not args.no_progress, figures=not args.no_figures)
    except GridInterrupted as e:
        print(f"xfw: {e}", file=sys.stderr)
        return 128 + e.signal  # 130 for Ctrl-C, 143 for SIGTERM
    except GridAborted as e:
        print(f"xfw: error: {e}", file=sys.stderr)
        return 1
    if summary.failed:
        print(f"xfw: {summary.failed} cells failed (see the error column of {summary.run_dir}/cells.csv); "
              "run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def resolve_run(run: str, out: str = "results") -> str:
    """A run folder from a path or a run name under ``out``."""
    from ..grid.store import MANIFEST

    for candidate in (run, os.path.join(out, run)):
        if os.path.isfile(os.path.join(candidate, MANIFEST)):
            return candidate
    raise UsageError(f"RUN: no run folder (with a {MANIFEST}) at {run} or {os.path.join(out, run)}")


def cmd_heatmap(args) -> int:
    run_dir = resolve_run(args.run, args.out)
    from ..grid import figures, report

    report.write_report(run_dir, figures=figures.draw_run(run_dir))
    print(f"figures in {os.path.join(run_dir, 'figures')}, report {os.path.join(run_dir, 'report.md')}")
    return 0
