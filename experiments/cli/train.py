"""``xfw train``: train one model in one framework and print a line per epoch."""
from __future__ import annotations

import sys
import time

from .. import options
from ..errors import UsageError
from .args import non_negative_float, non_negative_int, positive_float, positive_int


def add_data_options(p) -> None:
    p.add_argument("--dataset", default="digits", help="data set: digits, mnist, synthetic (default digits; "
                                                        "mnist needs --data)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="mnist.npz, a folder of the four MNIST IDX files (or a torchvision MNIST root), "
                        "IMAGES,LABELS IDX files, or CSV (one file, TRAIN.csv,TEST.csv, or a folder)")
    p.add_argument("--limit", type=positive_int, default=None, help="keep only the first LIMIT samples (quick runs)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one model and print a line per epoch")
    p.add_argument("--framework", default="scratch", help="scratch, keras or torch (default scratch)")
    p.add_argument("--arch", default="course_cnn", help="registered architecture (default course_cnn)")
    add_data_options(p)
    p.add_argument("--optimizer", default="sgd", help="sgd, momentum, nesterov, rmsprop, adagrad, adam (default sgd)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--dtype", default="float64", help="float32 or float64 (default float64)")
    p.add_argument("--flavor", default="keras", help="whose optimizer rule the scratch engine follows: keras or "
                                                     "torch (default keras)")
    p.add_argument("--eta", type=positive_float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--lmbda", type=non_negative_float, default=1e-4,
                   help="L2 factor as Keras's l2(lambda): kernels only (default 1e-4)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.set_defaults(func=cmd_train)


def load_data(dataset: str, data_path, limit, dtype, seed: int = 0):
    """The data set a command asked for, after checking ``--dataset`` against ``--data``."""
    from .. import datasets

    options.dataset(dataset)
    if dataset == "mnist" and not data_path:
        raise UsageError("--data: the mnist data set needs --data PATH (mnist.npz or a folder of IDX files)")
    if dataset != "mnist" and data_path:
        raise UsageError(f"--data: only the mnist data set reads a file; --dataset is {dataset!r}")
    return datasets.load(dataset, path=data_path, dtype=dtype, seed=seed, limit=limit)


def cmd_train(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from scratch import architectures

    from ..runtime import make_trainer, missing

    (framework,) = options.frameworks([args.framework], "--framework")
    options.arch(args.arch)
    options.optimizer(args.optimizer)
    options.dtype(args.dtype)
    options.choice("--flavor", args.flavor, ("keras", "torch"), "flavour")
    absent = missing(framework)
    if absent:
        raise UsageError(f"--framework: {framework} needs the package {absent!r}, which is not installed")
    dtype = np.dtype(args.dtype)
    data = load_data(args.dataset, args.data, args.limit, dtype, seed=args.seed)
    layers = architectures.get(args.arch)
    if args.batch_size > data.x_train.shape[0]:
        raise UsageError(f"--batch-size: {args.batch_size} is larger than the {data.x_train.shape[0]} training samples")
    try:
        trainer = make_trainer(framework, layers, data.input_shape, loss="categorical_crossentropy",
                               optimizer=args.optimizer, learning_rate=args.eta, l2=args.lmbda, dtype=args.dtype,
                               seed=args.seed, flavor=args.flavor)
    except ValueError as e:  # e.g. an architecture that does not fit the data's shape
        raise UsageError(f"--arch {args.arch} on {data.name} {data.input_shape}: {e}") from None
    print(f"{framework}: {args.arch} on {data.describe()}; {args.optimizer} eta={args.eta:g} "
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
