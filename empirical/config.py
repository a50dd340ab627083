"""Study and run configurations: frozen dataclasses, validated once at the edge.

A *study* is a grid (activations × inits × seeds × models); each point is a *run*. Runs that share
everything but their activation and initialisation form a *group*: the engine trains a group as one
batched program, all of its runs seeing the same batches in the same order.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "silu", "selu", "gelu")
MODELS = ("mlp", "tinyvgg")
OPTIMIZERS = ("adam", "sgd")
INITS = ("default", "he", "xavier", "glorot_uniform", "lecun", "critical", "gaussian")
DEVICES = ("cpu", "cuda", "auto")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "mnist1d")


MAX_RUNS = 100_000
MAX_LIST = 10_000
MAX_DEPTH = 1000
MAX_WIDTH = 16384
MAX_CHANNELS = 1024
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names it and what is allowed."""


@dataclass(frozen=True)
class RunConfig:
    """One training run. Its ``run_id`` is a hash of every field that changes its numbers."""

    activation: str = "relu"
    seed: int = 42
    init: str = "default"
    sigma_b2: float = 0.0
    sigma_w2: float | None = None
    model: str = "mlp"
    widths: tuple[int, ...] = (128, 64)
    channels: int = 8
    dataset: str = "digits"
    train_size: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    batch_size: int = 128
    epochs: int = 20
    probe_every: int = 100
    probe_size: int = 256
    eps: float = 0.01
    normalize: bool = True
    adam_eps: float = 1e-8
    subset_seed: int | None = None
    sharpness_every: int = 0
    sharpness_iters: int = 20

    @property
    def run_id(self) -> str:
        """sha1 of the fields; those added after results were first shipped (``_LATER``) enter only when
        set away from their default, so earlier results keep their ids."""
        d = dataclasses.asdict(self)
        for k, default in _LATER.items():
            if d[k] == default:
                d.pop(k)
        blob = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def group_key(self) -> tuple:
        """Runs with equal keys are trained together in one batched program."""
        d = dataclasses.asdict(self)
        for k in ("activation", "init", "sigma_b2", "sigma_w2"):
            d.pop(k)
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))

    @property
    def program_key(self) -> tuple:
        """Runs with equal keys can share one batched program: the group key less the seed (each run keeps its
        own seed's initialisation, batch order and probe batch)."""
        return tuple(kv for kv in self.group_key if kv[0] != "seed")

    def task_key(self, merge_seeds: bool) -> tuple:
        """The key of the batched program this run trains in: ``program_key`` when seeds are merged (one
        machine) and the data do not depend on the seed (the full training set, or a ``subset_seed`` subset),
        else ``group_key``."""
        merge = merge_seeds and (self.train_size is None or self.subset_seed is not None)
        return self.program_key if merge else self.group_key

    @property
    def depth(self) -> int:
        return len(self.widths) if self.model == "mlp" else 4


_LATER = {"sigma_w2": None, "normalize": True, "adam_eps": 1e-8, "subset_seed": None,
          "sharpness_every": 0, "sharpness_iters": 20}
_RUN_DEFAULTS = RunConfig()
DEFAULT_SEEDS = (42, 451, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: the grid of runs, where the data lives, where results go."""

    name: str = "default"
    activations: tuple[str, ...] = DEFAULT_ACTIVATIONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    inits: tuple[str, ...] = ("default",)
    sigma_b2: float = _RUN_DEFAULTS.sigma_b2
    sigma_w2s: tuple[float, ...] = ()
    depths: tuple[int, ...] = ()
    models: tuple[str, ...] = ("mlp",)
    widths: tuple[int, ...] = _RUN_DEFAULTS.widths
    channels: int = _RUN_DEFAULTS.channels
    dataset: str = _RUN_DEFAULTS.dataset
    data_dir: str = "~/.cache/actlab/data"
    download: bool = False
    train_size: int | None = _RUN_DEFAULTS.train_size
    train_sizes: tuple[int, ...] = ()
    optimizer: str = _RUN_DEFAULTS.optimizer
    lr: float = _RUN_DEFAULTS.lr
    momentum: float = _RUN_DEFAULTS.momentum
    batch_size: int = _RUN_DEFAULTS.batch_size
    epochs: int = _RUN_DEFAULTS.epochs
    probe_every: int = _RUN_DEFAULTS.probe_every
    probe_size: int = _RUN_DEFAULTS.probe_size
    eps: float = _RUN_DEFAULTS.eps
    normalize: bool = _RUN_DEFAULTS.normalize
    adam_eps: float = _RUN_DEFAULTS.adam_eps
    subset_seed: int | None = _RUN_DEFAULTS.subset_seed
    sharpness_every: int = _RUN_DEFAULTS.sharpness_every
    sharpness_iters: int = _RUN_DEFAULTS.sharpness_iters
    device: str = "cpu"
    compile: bool = False
    out_dir: str = "runs"
    time_activations: bool = True
    correlation: bool = False
    layer_quantiles: bool = True

    def runs(self) -> list[RunConfig]:
        """The grid, depth-major: ``depths`` (if given) make MLPs of ``widths[0]`` units per layer; init
        ``gaussian`` takes each σ_w² of ``sigma_w2s`` (W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²));
        ``train_sizes`` (if given) sweeps the training-set size (nested subsets, see data)."""
        shared = {k: getattr(self, k) for k in _SHARED}
        archs = [(self.widths[0],) * d for d in self.depths] if self.depths else [self.widths]
        out = []
        for ts in (self.train_sizes or (self.train_size,)):
            shared["train_size"] = ts
            for widths in archs:
                shared["widths"] = widths
                for model in self.models:
                    for seed in self.seeds:
                        for init in self.inits:
                            for sw2 in (self.sigma_w2s if init == "gaussian" else (None,)):
                                out += [RunConfig(activation=act, seed=seed, init=init, model=model,
                                                  sigma_w2=None if sw2 is None else float(sw2), **shared)
                                        for act in self.activations]
        return out

    @property
    def folder(self) -> str:
        import os
        return os.path.join(os.path.expanduser(self.out_dir), self.name)

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


_SHARED = tuple(f.name for f in dataclasses.fields(RunConfig)
                if f.name in {g.name for g in dataclasses.fields(StudyConfig)})

FIVE_SEEDS = (42, 451, 1, 2, 3)
TORCH_DEFAULTS = dict(inits=("default",), normalize=True, adam_eps=1e-8)

PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(description="digits (offline), MLP 64-128-64-10, the seeds' 7 activations, 8 seeds, 20 epochs "
                                "(8 seeds: the fewest with which the study's 10 Holm-corrected paired tests across "
                                "seeds can reach α = 0.05, 2⁻⁸ ≤ 0.05/10)"),
    "mnist-mlp": dict(
        description="the seeds' first notebook (MNIST MLP 784-128-64-10, sigmoid/tanh/relu), Keras-faithful: "
                    "Glorot-uniform weights, zero biases, pixels in [0, 1] not standardised, Adam lr 1e-3 "
                    "eps 1e-7, batch 128, 20 epochs. Differences from the seed: 5 seeds instead of one run, "
                    "the last 10 % of the training split is not held out for validation, no Keras shuffling "
                    "RNG (our batches are seeded). --torch-defaults switches to torch's default init, "
                    "standardised inputs and eps 1e-8",
        name="mnist-mlp", dataset="mnist", activations=("sigmoid", "tanh", "relu"), epochs=20, probe_every=100,
        inits=("glorot_uniform",), normalize=False, adam_eps=1e-7, seeds=FIVE_SEEDS),
    "cifar10-5act": dict(
        description="the seeds' CIFAR-10 study: TinyVGG, relu, leaky_relu, swish, sigmoid, tanh, 10 epochs. "
                    "Differences from the seed: 5 seeds, 16 channels, inputs standardised per channel, torch's "
                    "default init, batches seeded",
        name="cifar10-5act", dataset="cifar10", models=("tinyvgg",), channels=16,
        activations=("relu", "leaky_relu", "swish", "sigmoid", "tanh"), epochs=10, probe_every=100,
        seeds=FIVE_SEEDS),
    "mnist-lowsample": dict(
        description="the seeds' MNIST low-sample study: nested stratified training subsets of 100, 500, 1,000 "
                    "and 5,000 images, the same subset for every seed (seeds vary the initialisation only), MLP "
                    "and TinyVGG, relu/sigmoid/tanh/selu, 30 epochs, per-batch loss. Differences from the seed: "
                    "5 seeds, several sizes instead of one, inputs standardised",
        name="mnist-lowsample", dataset="mnist", train_sizes=(100, 500, 1000, 5000), subset_seed=0,
        models=("mlp", "tinyvgg"), activations=("relu", "sigmoid", "tanh", "selu"), epochs=30, probe_every=20,
        seeds=FIVE_SEEDS),
    "lowsample": dict(
        description="offline low-sample study: 200 stratified digits (the same subset for every seed), MLP and "
                    "TinyVGG, 5 activations, 9 seeds (the fewest with which the study's 20 Holm-corrected paired "
                    "tests can reach α = 0.05, 2⁻⁹ ≤ 0.05/20), 40 epochs",
        name="lowsample", train_size=200, subset_seed=0, models=("mlp", "tinyvgg"), batch_size=32,
        seeds=(42, 451, 1, 2, 3, 4, 5, 6, 7),
        activations=("relu", "sigmoid", "tanh", "selu", "gelu"), epochs=40, probe_every=25),
    "depth-sweep": dict(
        description="gradient flow with depth: digits, MLP 30 x 256, inits default/he/critical (sigma_b2 = 0.05), 5 seeds, 1 epoch, probes at init and at the end",
        name="depth-sweep", widths=(256,) * 30, inits=("default", "he", "critical"), sigma_b2=0.05,
        activations=("relu", "leaky_relu", "sigmoid", "tanh", "silu", "selu", "gelu", "elu"),
        seeds=(1, 2, 3, 4, 5), epochs=1, probe_every=1000, probe_size=512, lr=1e-3),
    "trainability": dict(
        description="trainable depth vs the correlation depth scale (Schoenholz et al. 2017) on MNIST-1D (generated "
                    "offline): MLP width 64, depths 4-48, sigma_w2 0.5-4.0 step 0.25 at sigma_b2 = 0.05, "
                    "tanh/elu/selu/relu, 5 seeds, SGD lr 0.01, batch 32, 250 steps; plus c_l, q_l at init",
        name="trainability", dataset="mnist1d", activations=("tanh", "elu", "selu", "relu"),
        inits=("gaussian",), sigma_w2s=tuple(0.5 + 0.25 * i for i in range(15)), sigma_b2=0.05,
        depths=(4, 8, 16, 32, 48), widths=(64,), seeds=(1, 2, 3, 4, 5), optimizer="sgd", lr=0.01,
        batch_size=32, epochs=2, probe_every=100000, probe_size=128, time_activations=False, correlation=True,
        layer_quantiles=False),
    "trainability-full": dict(
        description="the paper's scale, for a GPU or a Ray cluster: MNIST (--download), MLP width 300, depths 10-300, "
                    "sigma_w2 1.0-4.0 step 0.25 at sigma_b2 = 0.05, 4 activations, 3 seeds, SGD lr 1e-3, batch 128, "
                    "10 epochs (4,690 steps)",
        name="trainability-full", dataset="mnist", activations=("tanh", "elu", "selu", "relu"),
        inits=("gaussian",), sigma_w2s=tuple(1.0 + 0.25 * i for i in range(13)), sigma_b2=0.05,
        depths=(10, 20, 30, 40, 50, 75, 100, 150, 200, 250, 300), widths=(300,), seeds=(1, 2, 3),
        optimizer="sgd", lr=1e-3, batch_size=128, epochs=10, probe_every=100000, probe_size=256,
        time_activations=False, correlation=True, layer_quantiles=False),
    "edge-of-stability": dict(
        description="sharpness against 2/lr: digits, MLP 64-128-64-10, full-batch gradient descent (lr 0.5, "
                    "so 2/lr = 4), 400 steps, the seeds' 7 activations, 5 seeds; top Hessian eigenvalue of the "
                    "full training loss every 20 steps (Lanczos, 12 steps)",
        name="edge-of-stability", optimizer="sgd", lr=0.5, batch_size=4096, probe_size=4096, epochs=400,
        probe_every=100, sharpness_every=20, sharpness_iters=12, seeds=FIVE_SEEDS),
    "telu": dict(
        description="TeLU against its peers (Fernandez & Mali 2024): digits, MLP 64-128-64-10, Adam lr 1e-3, "
                    "batch 128, 20 epochs, TeLU, SiLU, GELU, Mish and ReLU, 5 seeds",
        name="telu", activations=("telu", "silu", "gelu", "mish", "relu"), seeds=(1, 2, 3, 4, 5)),
    "edge-of-stability-adam": dict(
        description="preconditioned sharpness against 38/lr: digits, MLP 64-128-64-10, full-batch Adam "
                    "(lr 0.01, so 38/lr = 3800), 400 steps, the seeds' 7 activations, 5 seeds; top eigenvalue "
                    "of P^-1 H every 20 steps (Lanczos, 12 steps)",
        name="edge-of-stability-adam", optimizer="adam", lr=0.01, batch_size=4096, probe_size=4096, epochs=400,
        probe_every=100, sharpness_every=20, sharpness_iters=12, seeds=FIVE_SEEDS),
}

_FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}


def _suggest(value: str, allowed) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _one_of(what: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} '{value}'{_suggest(value, allowed)}; allowed: {', '.join(allowed)}")


def _positive_int(what: str, value, allow_none=False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def _finite(what: str, value, lo: float | None = None, lo_open=True, hi: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ConfigError(f"{what} must be {'>' if lo_open else '>='} {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{what} must be <= {hi:g}, got {value!r}")


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _unique(what: str, values) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{what} contain {v!r} twice; every run must be unique (give each value once)")
        seen.add(v)


def _text(what: str, value, empty_ok=False) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {type(value).__name__} {_show(value)}")
    if not empty_ok and not value.strip():
        raise ConfigError(f"{what} is empty; give a folder path")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{what} {value!r} contains control characters (a newline?); remove them")


def _show(value, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n - 1] + "…"


def _check_field(name: str, v) -> None:
    """``v`` has field ``name``'s declared type: no bool for a number, no string for a boolean."""
    t = str(_FIELDS[name].type)
    if t == "bool":
        ok, kind = isinstance(v, bool), "true or false"
    elif t == "str":
        ok, kind = isinstance(v, str), "a string"
    elif t.startswith("int"):
        ok = (v is None and "None" in t) or (isinstance(v, int) and not isinstance(v, bool))
        kind = "an integer"
    elif t == "float":
        ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
    else:
        ok, kind = isinstance(v, tuple), "a list"
        if ok and len(v) > MAX_LIST:
            raise ConfigError(f"{name} has {len(v):,} entries; at most {MAX_LIST:,} are allowed")
    if not ok:
        raise ConfigError(f"{name} must be {kind}, got {type(v).__name__} {_show(v)}")


def _check_types(cfg: StudyConfig) -> None:
    for f in dataclasses.fields(cfg):
        _check_field(f.name, getattr(cfg, f.name))


def validate(cfg: StudyConfig) -> StudyConfig:
    """Check every field; return ``cfg`` with activation names made canonical. Raises ConfigError."""
    from theory import activations as registry

    _check_types(cfg)
    if not _NAME_RE.fullmatch(cfg.name) or ".." in cfg.name:
        raise ConfigError(
            f"study name {cfg.name!r} is not allowed; use letters, digits, '_', '-', '.' (no '/' or '..', at most 64)")
    _text("out_dir", cfg.out_dir)
    _text("data_dir", cfg.data_dir)
    if not cfg.activations:
        raise ConfigError("activations is empty; give at least one (e.g. relu)")
    for name, values in (("seeds", cfg.seeds), ("inits", cfg.inits), ("models", cfg.models)):
        _unique(name, values)
    n_inits = sum(len(cfg.sigma_w2s) if i == "gaussian" else 1 for i in cfg.inits)
    n_runs = (len(cfg.activations) * len(cfg.seeds) * n_inits * len(cfg.models) * max(1, len(cfg.depths))
              * max(1, len(cfg.train_sizes)))
    if n_runs > MAX_RUNS:
        raise ConfigError(f"the study has {n_runs:,} runs (activations x seeds x inits x models); at most "
                          f"{MAX_RUNS:,} are allowed: split it into several studies")
    acts = []
    for a in cfg.activations:
        if not isinstance(a, str):
            raise ConfigError(f"every activation must be a name or formula string, got {a!r}")
        try:
            acts.append(registry.lookup(a).name)
        except (registry.UnknownActivation, registry.FormulaError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    for a, canon in zip(cfg.activations, acts):
        if acts.count(canon) > 1:
            same = [b for b, c in zip(cfg.activations, acts) if c == canon]
            raise ConfigError(f"activations contain {canon!r} more than once (given as {', '.join(map(repr, same))}); "
                              "every run must be unique (give each activation once)")
    for i in cfg.inits:
        _one_of("init", i, INITS)
    if not cfg.inits:
        raise ConfigError("inits is empty; allowed: " + ", ".join(INITS))
    for m in cfg.models:
        _one_of("model", m, MODELS)
    if not cfg.models:
        raise ConfigError("models is empty; allowed: " + ", ".join(MODELS))
    _one_of("data set", cfg.dataset, DATASETS)
    _one_of("optimizer", cfg.optimizer, OPTIMIZERS)
    _one_of("device", cfg.device, DEVICES)
    if not cfg.seeds:
        raise ConfigError("seeds is empty; give at least one integer seed")
    for s in cfg.seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32:
            raise ConfigError(f"seed must be an integer in 0..{2**32 - 1}, got {_show(s)}")
    if not cfg.widths:
        raise ConfigError("widths is empty; give at least one hidden width (e.g. 128,64)")
    for w in cfg.widths:
        _positive_int("every width", w)
    if len(cfg.widths) > MAX_DEPTH:
        raise ConfigError(f"{len(cfg.widths)} hidden layers is too deep; at most {MAX_DEPTH} are allowed")
    if max(cfg.widths) > MAX_WIDTH:
        raise ConfigError(f"hidden width {max(cfg.widths)} is too wide; at most {MAX_WIDTH} units per layer")
    _positive_int("channels", cfg.channels)
    if cfg.channels > MAX_CHANNELS:
        raise ConfigError(f"channels {cfg.channels} is too many; at most {MAX_CHANNELS} per convolution")
    _positive_int("epochs", cfg.epochs)
    _positive_int("batch size", cfg.batch_size)
    _positive_int("probe_every", cfg.probe_every)
    _positive_int("probe_size", cfg.probe_size)
    _positive_int("train_size", cfg.train_size, allow_none=True)
    for what, v in (("epochs", cfg.epochs), ("batch size", cfg.batch_size), ("probe_every", cfg.probe_every),
                    ("probe_size", cfg.probe_size), ("train_size", cfg.train_size or 1)):
        if v > 10**9:
            raise ConfigError(f"{what} {v} is too large; at most 1000000000")
    for ts in cfg.train_sizes:
        _positive_int("every train size", ts)
    if len(set(cfg.train_sizes)) != len(cfg.train_sizes):
        raise ConfigError(f"train_sizes contain duplicates: {list(cfg.train_sizes)}")
    if cfg.subset_seed is not None and (isinstance(cfg.subset_seed, bool) or not isinstance(cfg.subset_seed, int)
                                        or cfg.subset_seed < 0):
        raise ConfigError(f"subset_seed must be a non-negative integer or unset, got {cfg.subset_seed!r}")
    _finite("adam_eps", cfg.adam_eps, lo=0.0)
    if isinstance(cfg.sharpness_every, bool) or not isinstance(cfg.sharpness_every, int) or cfg.sharpness_every < 0:
        raise ConfigError(f"sharpness_every must be 0 (off) or a positive integer, got {cfg.sharpness_every!r}")
    _positive_int("sharpness_iters", cfg.sharpness_iters)
    _finite("learning rate", cfg.lr, lo=0.0)
    _finite("momentum", cfg.momentum, lo=0.0, lo_open=False, hi=1.0)
    _finite("sigma_b2", cfg.sigma_b2, lo=0.0, lo_open=False)
    _finite("eps", cfg.eps, lo=0.0)
    if cfg.momentum != 0 and cfg.optimizer != "sgd":
        raise ConfigError(f"momentum {cfg.momentum:g} is set but optimizer is {cfg.optimizer!r}, which ignores it; "
                          "use --optimizer sgd or drop --momentum")
    if cfg.sigma_b2 != 0 and not {"critical", "gaussian"} & set(cfg.inits):
        raise ConfigError(f"sigma_b2 {cfg.sigma_b2:g} is set but no init uses it (inits: {', '.join(cfg.inits)}); "
                          "it applies to --init critical and --init gaussian only")
    if ("gaussian" in cfg.inits) != bool(cfg.sigma_w2s):
        raise ConfigError("init 'gaussian' and sigma_w2s go together: give --init gaussian with --sigma-w2 "
                          f"1.0,1.5,... (got inits {list(cfg.inits)}, sigma_w2s {list(cfg.sigma_w2s)})")
    for w in cfg.sigma_w2s:
        _finite("every sigma_w2", w, lo=0.0)
    if len(set(cfg.sigma_w2s)) != len(cfg.sigma_w2s):
        raise ConfigError(f"sigma_w2s contain duplicates: {list(cfg.sigma_w2s)}")
    for d in cfg.depths:
        _positive_int("every depth", d)
    if cfg.depths and (max(cfg.depths) > MAX_DEPTH or len(set(cfg.depths)) != len(cfg.depths)):
        raise ConfigError(f"depths {_show(list(cfg.depths))} must be distinct and at most {MAX_DEPTH}")
    if cfg.depths and cfg.models != ("mlp",):
        raise ConfigError(f"depths need the mlp model alone, got models {list(cfg.models)}")
    return dataclasses.replace(cfg, activations=tuple(acts))


_ELEMENT = {"activations": str, "seeds": int, "inits": str, "models": str, "widths": int, "sigma_w2s": float,
            "depths": int, "train_sizes": int}


def _coerce(key: str, value, strict: bool):
    """``value`` for field ``key``; lists become tuples. ``strict`` (TOML): no scalar for a list."""
    f = _FIELDS[key]
    if "tuple" in str(f.type):
        if not strict and isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            kind = _ELEMENT[key].__name__.replace("str", "string").replace("int", "integer")
            raise ConfigError(f"{key} must be a list of {kind}s, e.g. {key} = {_EXAMPLES[key]}, got {_show(value)}")
        if len(value) > MAX_LIST:
            raise ConfigError(f"{key} has {len(value):,} entries; at most {MAX_LIST:,} are allowed")
        want = _ELEMENT[key]
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float) if want is float else want):
                kind = {str: "a string", int: "an integer", float: "a number"}[want]
                raise ConfigError(f"every entry of {key} must be {kind}, got {type(v).__name__} {_show(v)}")
        return tuple(value)
    _check_field(key, value)
    return value


_EXAMPLES = {"activations": '["relu", "tanh"]', "seeds": "[1, 2]", "inits": '["he"]', "models": '["mlp"]',
             "widths": "[128, 64]", "sigma_w2s": "[1.0, 1.5]", "depths": "[5, 10]",
             "train_sizes": "[100, 1000]"}


def from_mapping(data: dict, base: StudyConfig | None = None, source: str = "config", strict: bool = False) -> StudyConfig:
    """A StudyConfig from a flat mapping (TOML table or CLI overrides); unknown keys are named.

    ``depth``/``width`` (a deep MLP of equal widths) and ``widths`` in one mapping are refused.
    """
    base = base or StudyConfig()
    kwargs = {}
    for key, value in data.items():
        k = key.replace("-", "_")
        if k == "preset":
            continue
        if k == "depth" or k == "width":
            continue
        if k not in _FIELDS:
            raise ConfigError(f"{source}: unknown key {_show(key)}{_suggest(k, _FIELDS)}; allowed: {', '.join(_FIELDS)}")
        try:
            kwargs[k] = _coerce(k, value, strict)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if "depth" in data or "width" in data:
        if "widths" in data:
            raise ConfigError(f"{source}: widths and depth/width both given; use widths (any list) or "
                              "depth with width (equal layers), not both")
        depth = data.get("depth", len(base.widths))
        width = data.get("width", base.widths[0])
        _positive_int("depth", depth)
        _positive_int("width", width)
        if depth > MAX_DEPTH:
            raise ConfigError(f"depth {depth} is too deep; at most {MAX_DEPTH} hidden layers are allowed")
        if width > MAX_WIDTH:
            raise ConfigError(f"width {width} is too wide; at most {MAX_WIDTH} units per layer")
        kwargs["widths"] = (width,) * depth
    return dataclasses.replace(base, **kwargs)


def preset(name: str) -> StudyConfig:
    if not isinstance(name, str):
        raise ConfigError(f"preset must be a string, got {type(name).__name__} {_show(name)}; allowed: {', '.join(PRESETS)}")
    _one_of("preset", name, list(PRESETS))
    values = {k: v for k, v in PRESETS[name].items() if k != "description"}
    return dataclasses.replace(StudyConfig(), **values)


def load_toml(path: str, base: StudyConfig | None = None) -> StudyConfig:
    """Read a study from a TOML file: top-level keys are StudyConfig fields (plus depth/width, preset),
    optionally inside a ``[study]`` table; types are strict, unknown and repeated keys are refused."""
    import os
    import stat as st

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if not isinstance(path, str) or not path.strip():
        raise ConfigError("config file path is empty; give a TOML file (e.g. --config study.toml)")
    try:
        info = os.stat(path)
        if not st.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path} is not a regular file (a FIFO, device or folder); give a TOML file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {info.st_size:,} bytes; at most {MAX_CONFIG_BYTES:,} are allowed")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); a TOML file is text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    source = f"config file {path}"
    if "study" in data:
        if not isinstance(data["study"], dict):
            raise ConfigError(f"{source}: study must be a table ([study]), got {_show(data['study'])}")
        top = {k: v for k, v in data.items() if k != "study"}
        both = sorted(set(top) & set(data["study"]))
        if both:
            raise ConfigError(f"{source}: {both[0]} is given twice (at the top and in [study]); give it once")
        data = {**top, **data["study"]}
    for k, v in data.items():
        if isinstance(v, dict):
            raise ConfigError(f"{source}: unknown table [{k}]; keys go at the top or in [study]")
    if "preset" in data:
        try:
            base = preset(data["preset"])
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return from_mapping(data, base=base, source=source, strict=True)
