"""The ``xfw`` command line: ``train``, ``grid``, ``heatmap``, ``parity`` and ``bench``.

Every option is checked before any training starts; a bad value prints one line
``xfw: error: <option>: <what is wrong and what is allowed>`` and exits with status 2.
"""
from __future__ import annotations

import argparse
import math
import sys
import time


class UsageError(ValueError):
    """A bad option value; printed as one line, exit status 2."""


def one_line_errors(parser):
    """argparse errors as one line ``xfw: error: ...`` (no usage block), exit status 2."""
    def error(message):
        parser.exit(2, f"xfw: error: {message}\n")

    parser.error = error
    return parser


def _number(kind, minimum: float, strict: bool):
    """An argparse type: a ``kind`` (int or float) above ``minimum`` (``strict``) or at least it."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    noun = "a finite number" if kind is float else "an integer"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a number' if kind is float else 'an integer'}") from None
        if (kind is float and not math.isfinite(value)) or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {noun} {bound}")
        return value
    return parse


# ``name`` is kept in the signatures for readability at the call sites; argparse names the option.
def positive_float(name):
    return _number(float, 0, strict=True)


def non_negative_float(name):
    return _number(float, 0, strict=False)


def positive_int(name):
    return _number(int, 0, strict=True)


def non_negative_int(name):
    return _number(int, 0, strict=False)


def _add_model_options(p, *, grid: bool):
    from scratch import architectures
    from scratch.optimizers import OPTIMIZERS

    from . import datasets
    from .frameworks import FRAMEWORKS

    p.add_argument("--arch", choices=architectures.names(), default=None if grid else "course_cnn",
                   help="registered architecture (default course_cnn)")
    p.add_argument("--dataset", choices=datasets.DATASETS, default=None if grid else "digits",
                   help="data set (default digits; mnist needs --data)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="mnist.npz (Keras layout) or a folder with the four MNIST IDX files")
    p.add_argument("--limit", type=positive_int("--limit"), default=None,
                   help="keep only the first LIMIT samples (quick runs)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None if grid else "sgd")
    p.add_argument("--batch-size", type=positive_int("--batch-size"), default=None if grid else 100)
    p.add_argument("--epochs", type=positive_int("--epochs"), default=None if grid else 30)
    p.add_argument("--dtype", choices=("float32", "float64"), default=None if grid else "float64")
    p.add_argument("--flavor", choices=("keras", "torch"), default=None if grid else "keras",
                   help="whose optimizer rule the scratch engine follows (default keras)")
    if not grid:
        p.add_argument("--framework", choices=FRAMEWORKS, default="scratch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xfw", description="The same networks in NumPy, Keras and PyTorch: train, compare, grid-search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one model and print a line per epoch")
    _add_model_options(p, grid=False)
    p.add_argument("--eta", type=positive_float("--eta"), default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--lmbda", type=non_negative_float("--lmbda"), default=1e-4,
                   help="L2 factor as Keras's l2(lambda): kernels only (default 1e-4)")
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="seconds per epoch of each framework, side by side in one run")
    p.add_argument("--frameworks", default=None, help="comma-separated subset of scratch,keras,torch")
    p.add_argument("--epochs", type=positive_int("--epochs"), default=3, help="timed epochs per case (median)")
    p.add_argument("--no-loop", action="store_true", help="skip the nested-loop baseline")
    p.add_argument("--no-28", action="store_true", help="skip the 28x28 synthetic table")
    p.add_argument("--grid", action="store_true", help="time the full default grid against the course's way")
    p.set_defaults(func=cmd_bench)

    for name, register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Subcommands defined in their own modules (grid, heatmap, parity)."""
    out = []
    for module, name in (("experiments.grid_cli", "grid"), ("experiments.parity_cli", "parity"), ("experiments.check_cli", "check")):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        out.append((name, mod.register))
    return out


def load_data(args, dtype):
    from . import datasets

    if args.dataset == "mnist" and not args.data:
        raise UsageError("--data: the mnist data set needs --data PATH (mnist.npz or a folder of IDX files)")
    if args.dataset != "mnist" and args.data:
        raise UsageError(f"--data: only the mnist data set reads a file; --dataset is {args.dataset!r}")
    return datasets.load(args.dataset, path=args.data, dtype=dtype, seed=getattr(args, "seed", 0), limit=args.limit)


def cmd_train(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from scratch import architectures

    from .frameworks import make_trainer, missing

    absent = missing(args.framework)
    if absent:
        raise UsageError(f"--framework: {args.framework} needs the package {absent!r}, which is not installed")
    dtype = np.dtype(args.dtype)
    data = load_data(args, dtype)
    layers = architectures.get(args.arch)
    if args.batch_size > data.x_train.shape[0]:
        raise UsageError(f"--batch-size: {args.batch_size} is larger than the {data.x_train.shape[0]} training samples")
    try:
        trainer = make_trainer(args.framework, layers, data.input_shape, loss="categorical_crossentropy",
                               optimizer=args.optimizer, learning_rate=args.eta, l2=args.lmbda, dtype=args.dtype,
                               seed=args.seed, flavor=args.flavor)
    except ValueError as e:  # e.g. an architecture that does not fit the data's shape
        raise UsageError(f"--arch {args.arch} on {data.name} {data.input_shape}: {e}") from None
    print(f"{args.framework}: {args.arch} on {data.describe()}; {args.optimizer} eta={args.eta:g} "
          f"lambda={args.lmbda:g} batch={args.batch_size} {args.dtype} seed={args.seed}")
    bar = tqdm(total=args.epochs, unit="epoch", leave=False, file=sys.stderr)
    start = time.perf_counter()

    def report(row):
        bar.update(1)
        tqdm.write(f"epoch {row['epoch']:4d}/{args.epochs}  loss {row['loss']:.4f}  "
                   f"train acc {row['train_accuracy']:.4f}  test acc {row['test_accuracy']:.4f}"
                   + ("  DIVERGED" if row["diverged"] else ""))

    try:
        history = trainer.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size,
                              seed=args.seed, validation_data=(data.x_test, data.y_test), on_epoch_end=report)
    finally:
        bar.close()
    last = history[-1]
    seconds = time.perf_counter() - start
    if last["diverged"]:
        print(f"diverged at epoch {last['epoch']} (loss {last['loss']}); lower --eta")
        return 1
    print(f"final: train accuracy {last['train_accuracy']:.4f}, test accuracy {last['test_accuracy']:.4f} "
          f"({seconds:.1f} s, {seconds / len(history):.3f} s/epoch)")
    return 0


def cmd_bench(args) -> int:
    from . import bench

    return bench.main(args)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("xfw: interrupted; finished results are kept", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, KeyError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"xfw: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
