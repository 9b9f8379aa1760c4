"""The configuration of a grid run: one frozen record, from a TOML file and/or the CLI.

:class:`GridConfig` holds every option of ``xfw grid``. A TOML file (``--config``)
uses the same names (a flat table; see ``experiments/configs/course.toml``); options
given on the command line override the file (:meth:`GridConfig.merged`).
:meth:`GridConfig.validate` checks everything before any training starts and raises
:class:`experiments.errors.UsageError` (a ``ValueError``) whose one-line message starts
with the option's name and says what is allowed.

The *identity* of a run (:data:`IDENTITY_FIELDS`, plus the fingerprint of the data
arrays actually loaded, ``data_sha256``) is everything that changes the numbers: the
model, the data, the grid and the training settings. The executor, the worker count,
the scheduler address, the output folder and the path the data was read from are not
part of it (the same grid gives the same numbers on every executor, and the same data
from any path); list values are compared as sets, in any order. Rerunning a run name
with another identity is refused (:func:`identity_changes`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass

from .. import options
from ..errors import UsageError
from ..runtime import FRAMEWORKS, missing

#: ``np.logspace(-5, 1, 7)`` as the course writes it, rounded to 12 significant digits
#: (NumPy's first value is 9.999999999999999e-06, one ulp below 1e-05; the rounded
#: values are the ones a reader sees, writes in a TOML file and types on the CLI).
DEFAULT_GRID = (1e-05, 1e-04, 1e-03, 1e-02, 0.1, 1.0, 10.0)
EXECUTORS = ("population", "serial", "process", "dask")

FLAVORS = ("keras", "torch")
INITS = ("scratch", "native")
TRAIN_EVALS = ("every", "last")

#: Fields that change the numbers of a run; a rerun under the same name must match them.
IDENTITY_FIELDS = ("arch", "dataset", "limit", "frameworks", "etas", "lmbdas", "epochs", "batch_size",
                   "optimizer", "seeds", "dtype", "flavor", "init", "loss", "train_eval")

# Spellings accepted in a TOML file (and by GridConfig.from_mapping) for the fields.
_ALIASES = {"eta": "etas", "lmbda": "lmbdas", "lambda": "lmbdas", "lambdas": "lmbdas", "batch-size": "batch_size",
            "seed": "seeds", "framework": "frameworks"}
# The option that sets each field, for error messages.
OPTION = {"etas": "--eta", "lmbdas": "--lmbda", "batch_size": "--batch-size", "seeds": "--seeds",
          "frameworks": "--frameworks", "loss": "loss (a --config field)"}
_STRINGS = ("arch", "dataset", "data", "optimizer", "dtype", "flavor", "init", "loss", "train_eval", "executor",
            "scheduler", "run", "out")
_INTS = ("limit", "epochs", "batch_size", "workers")


def option(name: str) -> str:
    """The command-line option of field ``name`` (``etas`` -> ``--eta``)."""
    return OPTION.get(name, "--" + name.replace("_", "-"))


def _usage_error(message: str) -> UsageError:
    return UsageError(message)


@dataclass(frozen=True)
class GridConfig:
    """Every option of a grid run; see ``xfw grid --help`` for each one."""

    arch: str = "course_cnn"
    dataset: str = "digits"
    data: str | None = None            # mnist.npz or a folder of IDX files (mnist only)
    limit: int | None = None           # keep the first LIMIT samples
    frameworks: tuple = FRAMEWORKS
    etas: tuple = DEFAULT_GRID
    lmbdas: tuple = DEFAULT_GRID
    epochs: int = 100
    batch_size: int = 100
    optimizer: str = "sgd"
    seeds: tuple = (0,)
    dtype: str = "float32"
    flavor: str = "keras"              # whose optimizer rule the scratch engine follows
    init: str = "scratch"              # initial weights: "scratch" (shared) or "native"
    loss: str = "categorical_crossentropy"
    input_shape: tuple | None = None   # (C, H, W) of the synthetic data set; None: (1, 8, 8)
    # "every": train loss and accuracy on the whole training set after every epoch (full
    # curves); "last": only after the last epoch (curves keep the running training loss
    # and the test metrics every epoch; about 30% faster). Final numbers are the same.
    train_eval: str = "every"
    workers: int | None = None         # None: os.cpu_count()
    executor: str = "population"      # one population per framework and seed on local processes
    scheduler: str | None = None       # Dask scheduler address; None: a LocalCluster
    run: str | None = None             # None: derived (config file stem, or ARCH-DATASET)
    out: str = "results"

    def __post_init__(self):
        # Normalise list fields to tuples of plain Python numbers (hashable, JSON-able).
        for name, kind in (("frameworks", str), ("etas", float), ("lmbdas", float), ("seeds", int)):
            value = getattr(self, name)
            object.__setattr__(self, name, _as_tuple(name, value, kind))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", options.input_shape(self.input_shape, option("input_shape")))

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, mapping: dict, *, source: str = "config") -> "GridConfig":
        """A config from a dict of field names (or their aliases); unknown keys are errors."""
        return cls().merged(_normalise_keys(mapping, source))

    @classmethod
    def from_toml(cls, path) -> "GridConfig":
        """The config of a TOML file (a flat table of the field names); ``run`` defaults to
        the file's stem."""
        import tomllib

        path = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except FileNotFoundError:
            raise _usage_error(f"--config: {path} does not exist") from None
        except OSError as e:
            raise _usage_error(f"--config: cannot read {path}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise _usage_error(f"--config: {path} is not valid TOML: {e}") from None
        except UnicodeDecodeError as e:
            raise _usage_error(f"--config: {path} is not UTF-8 text (byte {e.start}); expected a TOML file") from None
        if "grid" in table and isinstance(table["grid"], dict) and len(table) == 1:
            table = table["grid"]  # a [grid] table is accepted too
        values = _normalise_keys(table, f"--config {path}")
        values.setdefault("run", os.path.splitext(os.path.basename(path))[0])
        return cls().merged(values, source=f"--config {path}")

    def merged(self, overrides: dict, *, source: str | None = None) -> "GridConfig":
        """A copy with the non-None values of ``overrides`` (field names) replacing these;
        ``source`` (a config file) prefixes the errors of its values."""
        values = {k: v for k, v in overrides.items() if v is not None}
        unknown = [k for k in values if k not in self.field_names()]
        if unknown:
            raise _usage_error(f"config: unknown option(s) {', '.join(unknown)}; allowed: "
                               + ", ".join(self.field_names()))
        prefix = f"{source}: " if source else ""
        for name, value in values.items():
            if name in _STRINGS and not isinstance(value, str):
                raise _usage_error(f"{prefix}{name}: {value!r} is not allowed; expected a string")
            if name in _INTS and (isinstance(value, bool) or not isinstance(value, int)):
                raise _usage_error(f"{prefix}{name}: {value!r} is not allowed; expected a positive integer")
        try:
            return dataclasses.replace(self, **values)
        except (TypeError, ValueError) as e:
            raise _usage_error(prefix + str(e)) from None

    # ------------------------------------------------------------------ derived
    @property
    def run_name(self) -> str:
        return self.run or f"{self.arch}-{self.dataset}"

    @property
    def run_dir(self) -> str:
        return os.path.join(self.out, self.run_name)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def to_dict(self) -> dict:
        """All fields as JSON-able values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def identity(self, data_sha256: str | None = None) -> dict:
        """The fields that change the numbers (:data:`IDENTITY_FIELDS`, lists sorted), and
        ``data_sha256`` (:meth:`experiments.datasets.Dataset.fingerprint`) when given."""
        d = self.to_dict()
        out = {k: sorted(d[k]) if isinstance(d[k], list) else d[k] for k in IDENTITY_FIELDS}
        if self.input_shape is not None:  # only when set, so runs made before the field keep their hash
            out["input_shape"] = d["input_shape"]
        if data_sha256 is not None:
            out["data_sha256"] = data_sha256
        return out

    def identity_hash(self, data_sha256: str | None = None) -> str:
        """The config hash of every cell row: 16 hex digits of the identity's SHA-256."""
        return identity_hash(self.identity(data_sha256))

    def n_cells(self) -> int:
        return len(self.frameworks) * len(self.etas) * len(self.lmbdas) * len(self.seeds)

    # ------------------------------------------------------------------ checks
    def validate(self, *, load_data: bool = True, check_scheduler: bool = True):
        """Check every option; raise a one-line UsageError naming the option.

        With ``load_data`` the data set is loaded (a missing MNIST file is reported, the
        batch size is checked against the training samples, the architecture is built
        once on the data's input shape) and returned; otherwise None is returned.
        """
        from scratch import architectures

        def bad(name, text):
            return _usage_error(f"{option(name)}: {text}")

        options.arch(self.arch, option("arch"))
        options.dataset(self.dataset, option("dataset"))
        options.optimizer(self.optimizer, option("optimizer"))
        options.dtype(self.dtype, option("dtype"))
        options.choice(option("flavor"), self.flavor, FLAVORS, "flavour")
        options.choice(option("init"), self.init, INITS, "initialisation")
        options.choice(option("train_eval"), self.train_eval, TRAIN_EVALS, "value")
        options.choice(option("executor"), self.executor, EXECUTORS, "executor")
        from scratch import losses

        options.choice(option("loss"), self.loss, losses.LOSSES, "loss")
        options.frameworks(self.frameworks, option("frameworks"))
        for fw in self.frameworks:
            absent = missing(fw)
            if absent:
                raise bad("frameworks", f"{fw} needs the package {absent!r}, which is not installed")
        for name, lower, strict in (("etas", 0.0, True), ("lmbdas", 0.0, False)):
            values = getattr(self, name)
            if not values:
                raise bad(name, "the list is empty: the grid needs at least one value")
            for v in values:
                if not math.isfinite(v) or (v <= lower if strict else v < lower):
                    raise bad(name, f"{v!r} is not allowed; every value must be a finite number "
                                    + ("> 0" if strict else ">= 0"))
            if len(set(values)) != len(values):
                raise bad(name, f"{list(values)} repeats a value")
        if not self.seeds:
            raise bad("seeds", "the list is empty: give at least one seed")
        if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise bad("seeds", f"{list(self.seeds)}: seeds must be distinct integers >= 0")
        for name in ("epochs", "batch_size"):
            _check_positive_int(name, getattr(self, name))
        if self.limit is not None:
            _check_positive_int("limit", self.limit)
        if self.workers is not None:
            _check_positive_int("workers", self.workers)
        if self.dataset == "mnist" and not self.data:
            raise bad("data", "the mnist data set needs --data PATH (mnist.npz or a folder of IDX files)")
        if self.input_shape is not None and self.dataset != "synthetic":
            raise bad("input_shape", f"only the synthetic data set takes a sample shape; --dataset is {self.dataset!r}")
        if self.dataset != "mnist" and self.data:
            raise bad("data", f"only the mnist data set reads a file; --dataset is {self.dataset!r}")
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise bad("out", f"{self.out} is a file; expected a folder for the results (it is created if missing)")
        if self.scheduler and self.executor not in ("dask", "population"):
            raise bad("scheduler", f"a scheduler address needs --executor dask or population "
                                   f"(it is {self.executor!r})")
        name = self.run_name
        if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
            raise bad("run", f"{name!r} is not a folder name (no path separators)")
        data = None
        if load_data:
            try:
                data = load_dataset(self)
            except FileNotFoundError as e:
                raise bad("data", str(e)) from None
            except ValueError as e:
                raise bad("data" if self.dataset == "mnist" else "dataset", str(e)) from None
            n = data.x_train.shape[0]
            if self.batch_size > n:
                raise bad("batch_size", f"{self.batch_size} is larger than the {n} training samples of "
                                        f"{data.name}; allowed: 1..{n}")
            import scratch

            try:
                scratch.build(architectures.get(self.arch), data.input_shape, dtype=self.dtype)
            except ValueError as e:
                raise bad("arch", f"{self.arch} does not fit {data.name} images {data.input_shape}: {e}") from None
        if check_scheduler and self.executor in ("dask", "population") and self.scheduler:
            check_scheduler_reachable(self.scheduler)
        return data


def load_dataset(config: GridConfig):
    """The config's data set (the split seed is always 0: ``seeds`` vary the model, not the data)."""
    from .. import datasets

    return datasets.load(config.dataset, path=config.data, dtype=config.dtype, seed=0, limit=config.limit,
                         input_shape=config.input_shape)


def check_scheduler_reachable(address: str, timeout: str = "3s") -> None:
    """Connect to the Dask scheduler at ``address`` once; a one-line UsageError if that fails."""
    try:
        from distributed import Client
    except ImportError:
        raise _usage_error("--executor: dask needs the package 'distributed' (pip install 'dask[distributed]')") \
            from None
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address

    try:
        scheme, location = parse_address(address)
    except ValueError as e:
        scheme, location = None, str(e)
    if scheme not in registry.backends or scheme == "inproc" or not location:
        raise _usage_error(f"--scheduler: {address!r} is not a Dask scheduler address; expected SCHEME://HOST:PORT "
                           "with SCHEME one of " + ", ".join(s for s in registry.backends if s != "inproc")
                           + " (e.g. tcp://10.0.0.5:8786)")
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:  # OSError, TimeoutError, ValueError for a bad address...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise _usage_error(f"--scheduler: cannot reach a Dask scheduler at {address} within {timeout} ({reason}); "
                           "give the address of a running scheduler (tcp://HOST:PORT) or leave --scheduler out "
                           "for a local cluster") from None
    client.close()


def identity_hash(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_changes(old: dict, new: dict) -> list:
    """``["epochs: 100 -> 50", ...]`` for the identity fields that differ.

    Lists compare in any order. An identity recorded before the data fingerprint existed
    (it has the data path instead) is compared on the other fields only."""
    def normal(identity):
        out = {k: sorted(v) if isinstance(v, list) else v for k, v in identity.items() if k != "data"}
        if "data_sha256" not in old:
            out.pop("data_sha256", None)
        return out

    old, new = normal(old), normal(new)
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a != b:
            out.append(f"{k}: {_short(a)} -> {_short(b)}")
    return out


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _usage_error(f"{option(name)}: {value!r} is not allowed; expected a positive integer")


def _as_tuple(name, value, kind) -> tuple:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, (list, tuple)):
        value = [value]
    out = []
    for v in value:
        if kind is str:
            if not isinstance(v, str):
                raise ValueError(f"{option(name)}: {v!r} is not a name")
            out.append(v)
        elif kind is float:
            try:
                if isinstance(v, bool):
                    raise ValueError
                out.append(float(v))
            except (TypeError, ValueError):
                raise ValueError(f"{option(name)}: {v!r} is not a number") from None
        else:
            if isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
            elif isinstance(v, str) and v.strip().lstrip("-").isdigit():
                out.append(int(v))
            elif isinstance(v, float) and v.is_integer():
                out.append(int(v))
            else:
                raise ValueError(f"{option(name)}: {v!r} is not an integer")
    return tuple(out)


def _normalise_keys(mapping: dict, source: str) -> dict:
    allowed = set(GridConfig.field_names())
    values = {}
    for key, value in mapping.items():
        name = _ALIASES.get(key, key.replace("-", "_") if isinstance(key, str) else key)
        if name not in allowed:
            raise _usage_error(f"{source}: unknown option {key!r}; allowed: {', '.join(sorted(allowed))}")
        if name in values:
            raise _usage_error(f"{source}: {key!r} sets {name} a second time")
        values[name] = value
    return values
