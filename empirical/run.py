"""``python -m empirical.run``: train a study and print its summary.

Settings come from, in increasing priority: the default study, ``--preset``, ``--config FILE.toml``,
then the flags. Results go to ``runs/<name>/`` (git-ignored); ``--out-dir results`` writes the shipped
folder and ``--reproduce results/NAME`` retrains a shipped study and says whether it is bit-identical.
Bad input gets one line on stderr and exit code 2; an internal error its traceback, a request for a bug
report and exit code 1; Ctrl-C saves every finished run and exits 130; the same command resumes.
"""
from __future__ import annotations

import signal
import sys



def _interrupted_while_loading(*_):
    sys.stderr.write("\ninterrupted while loading, before anything was written\n")
    sys.stderr.flush()
    import os

    os._exit(130)


if __name__ == "__main__":  # Ctrl-C while the modules below load: one line, not a traceback
    signal.signal(signal.SIGINT, _interrupted_while_loading)

import argparse
import math
import statistics
import traceback
from typing import Sequence

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_REPRODUCED = 3
EXIT_INTERRUPTED = 130
BUG_REPORT = ("internal error: this is a bug in actlab, not in your input; please report it with the "
              "traceback above and the command you ran")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *a, **kw):
        super().__init__(*a, allow_abbrev=False, **kw)

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {printable(message)} (see --help)\n")


class _Once(argparse.Action):
    """A single-valued option: giving it twice is refused, not silently last-wins."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)!r} and {values!r}); give it once")
        setattr(namespace, self.dest, values)


class _Extend(argparse.Action):
    """A list option: repeated occurrences accumulate (``--seeds 1 --seeds 2`` is ``1,2``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, (getattr(namespace, self.dest, None) or []) + list(values))


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, newlines) shown as escapes, never interpreted."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def _csv(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty list {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {_KIND_NAMES[kind]}s") from None
    return parse


_KIND_NAMES = {int: "an integer", float: "a number"}


def _num(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_KIND_NAMES[kind]}") from None
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    from empirical import config as C

    d = C.StudyConfig()
    presets = "\n".join(f"  {k:16s} {v['description']}" for k, v in C.PRESETS.items())
    p = _Parser(
        prog="python -m empirical.run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train every activation's models as one batched study and record gradient flow.\n\n"
                    "With no arguments: the default study (digits, offline; 56 runs, 20 epochs) in seconds on 2 cores.\n"
                    "Results go to OUT_DIR/NAME/ (study.json, runs.csv, epochs.csv, steps.csv, layers.csv);\n"
                    "running the same command again skips finished runs.",
        epilog="presets:\n" + presets + "\n\nexample:\n  python -m empirical.run --preset depth-sweep\n"
               "  python -m empirical.run --activation relu --activation 'x*erf(x)' --epochs 5",
    )
    g = p.add_argument_group("study")
    g.add_argument("--preset", help=f"start from a named study: {', '.join(C.PRESETS)} (default: default)")
    g.add_argument("--config", metavar="FILE.toml",
                   help="read a whole study from a TOML file (keys are the long flag names with '_'; "
                        "'preset = NAME' starts from a preset); flags given here override it")
    g.add_argument("--name", help=f"study name, the results sub-folder (default: {d.name}; presets set their own)")
    g.add_argument("--out-dir", help=f"parent folder of results (default: {d.out_dir}; the shipped studies "
                                     "live in results/)")
    g.add_argument("--reproduce", metavar="STUDY_FOLDER",
                   help="retrain the study recorded in STUDY_FOLDER/study.json (e.g. results/default) into "
                        "runs/reproduce/ and report whether every number is bit-identical (wall times aside); "
                        "exit 0 if so, 3 if not; other study flags are not allowed with it")
    g.add_argument("--activation", action="append", metavar="NAME|FORMULA",
                   help="an activation name or a formula in x such as 'x*erf(x)'; repeat or comma-separate "
                        f"(default: {','.join(d.activations)})")
    g.add_argument("--seeds", type=_csv(int), action=_Extend, help=f"comma-separated seeds (default: {','.join(map(str, d.seeds))})")
    g = p.add_argument_group("model")
    g.add_argument("--model", action="append", help=f"{' or '.join(C.MODELS)}; repeatable (default: mlp)")
    g.add_argument("--widths", type=_csv(int), action=_Extend, help="hidden widths of the MLP, e.g. 128,64 (default: 128,64)")
    g.add_argument("--depth", type=_num(int), help="deep MLP: number of hidden layers (with --width)")
    g.add_argument("--width", type=_num(int), help="deep MLP: units per hidden layer (with --depth; default 128)")
    g.add_argument("--channels", type=_num(int), help=f"TinyVGG channels per conv (default: {d.channels})")
    g.add_argument("--init", action="append",
                   help=f"initialisation: {', '.join(C.INITS)}; repeatable (default: default = torch's own, "
                        "sigma_w^2 = 1/3; critical = the edge of chaos from theory)")
    g.add_argument("--sigma-b2", type=_num(float),
                   help=f"bias variance for --init critical and gaussian (default: {d.sigma_b2})")
    g.add_argument("--sigma-w2", dest="sigma_w2s", type=_csv(float), action=_Extend, metavar="LIST",
                   help="weight variances for --init gaussian (W ~ N(0, sigma_w2/fan_in)), e.g. 1.0,1.5,2.0; "
                        "runs differing only in sigma_w2 train as one batched program")
    g.add_argument("--depths", type=_csv(int), action=_Extend, metavar="LIST",
                   help="a grid of MLP depths (hidden layers of --width units each), e.g. 5,10,20")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"{', '.join(C.DATASETS)} (default: {d.dataset}, ships with scikit-learn)")
    g.add_argument("--data-dir", help=f"where torchvision data sets live (default: {d.data_dir})")
    g.add_argument("--download", action="store_true", default=None, help="download the data set if missing (needs network)")
    g.add_argument("--train-size", type=_num(int), help="stratified low-sample training subset of N examples (default: all)")
    g.add_argument("--train-sizes", type=_csv(int), action=_Extend, metavar="N,N,...",
                   help="sweep nested stratified training subsets of these sizes (replaces --train-size)")
    g.add_argument("--subset-seed", type=_num(int),
                   help="draw the training subset with this seed for every run, so that seeds vary the "
                        "initialisation only (default: each run's own seed)")
    g.add_argument("--no-normalize", action="store_true",
                   help="feed pixels in [0, 1] without per-channel standardisation (Keras-style)")
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", help=f"{' or '.join(C.OPTIMIZERS)} (default: {d.optimizer})")
    g.add_argument("--lr", type=_num(float), help=f"learning rate (default: {d.lr:g})")
    g.add_argument("--adam-eps", type=_num(float), help=f"Adam's epsilon (default: {d.adam_eps:g}; Keras uses 1e-7)")
    g.add_argument("--torch-defaults", action="store_true",
                   help="torch's defaults where a preset follows Keras: default init, standardised inputs, "
                        "Adam eps 1e-8 (e.g. --preset mnist-mlp --torch-defaults)")
    g.add_argument("--momentum", type=_num(float), help=f"SGD momentum (default: {d.momentum:g})")
    g.add_argument("--batch-size", type=_num(int), help=f"batch size (default: {d.batch_size})")
    g.add_argument("--epochs", type=_num(int), help=f"epochs (default: {d.epochs})")
    g.add_argument("--device", help="cpu, cuda or auto (default: cpu)")
    g.add_argument("--compile", action="store_true",
                   help="run each training step's forward pass and loss under torch.compile (inductor): on the 2-core "
                        "CPU measured, TinyVGG 1.1-1.3x faster, MLPs 0.8-1.1x (benchmarks/README.md), after "
                        "compiling for 5-50 s per program; numbers equal the eager ones to float rounding, not bit for bit, so a study "
                        "with --compile is a different study from one without (default: off)")
    g = p.add_argument_group("measurements")
    g.add_argument("--probe-every", type=_num(int), help=f"probe gradient flow every K steps (default: {d.probe_every})")
    g.add_argument("--probe-size", type=_num(int), help=f"examples in the fixed probe batch (default: {d.probe_size})")
    g.add_argument("--eps", type=_num(float), help=f"saturation threshold on |phi'| (default: {d.eps:g})")
    g.add_argument("--sharpness-every", type=_num(int),
                   help="top Hessian eigenvalue of the probe loss every K steps, by Lanczos (default: 0 = off)")
    g.add_argument("--sharpness-iters", type=_num(int), help=f"Lanczos steps per sharpness measurement (default: {d.sharpness_iters})")
    g.add_argument("--no-act-timing", action="store_true",
                   help="skip timing each activation's own forward+backward")
    g.add_argument("--no-layer-quantiles", action="store_true",
                   help="skip the per-layer quantiles of h_l and |dL/dW_l| at the first and last probe "
                        "(default: recorded, except in the trainability presets)")
    g = p.add_argument_group("execution")
    g.add_argument("--executor", choices=("local", "ray"),
                   help="local (this machine, default) or ray (a Ray cluster; pip install -e '.[ray]')")
    g.add_argument("--workers", type=_num(int), help="local executor: worker processes (default: 1)")
    g.add_argument("--ray-address", help="ray: cluster address, e.g. ray://head:10001 or auto (default: start a local Ray)")
    g.add_argument("--ray-cpus-per-task", type=_num(float), help="ray: CPUs per task (default: 1)")
    g.add_argument("--ray-gpus-per-task", type=_num(float), help="ray: GPUs per task (default: 0)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--quiet", action="store_true", help="print only the summary table")
    for action in p._actions:
        if type(action) is argparse._StoreAction:
            action.__class__ = _Once
    return p


_FLAG_KEYS = ("name", "out_dir", "seeds", "widths", "channels", "sigma_b2", "sigma_w2s", "depths", "dataset", "data_dir", "download",
              "train_size", "optimizer", "lr", "momentum", "batch_size", "epochs", "device", "probe_every",
              "probe_size", "eps", "adam_eps", "subset_seed", "train_sizes", "sharpness_every", "sharpness_iters")


def config_from_args(args: argparse.Namespace):
    from empirical import config as C

    for flag, value in (("--preset", args.preset), ("--config", args.config)):
        if value is not None and not value.strip():
            raise C.ConfigError(f"{flag} is empty; give a {'preset name' if flag == '--preset' else 'TOML file'}")
    if args.widths is not None and (args.depth is not None or args.width is not None):
        raise C.ConfigError("--widths and --depth/--width both given; use --widths (any list) or --depth with "
                            "--width (equal layers), not both")
    cfg = C.preset(args.preset) if args.preset is not None else C.StudyConfig()
    if args.config is not None:
        cfg = C.load_toml(args.config, base=cfg)
    over = {k: getattr(args, k) for k in _FLAG_KEYS if getattr(args, k) is not None}
    if args.activation:
        over["activations"] = [a.strip() for item in args.activation for a in _split_acts(item)]
    if args.init:
        over["inits"] = [i.strip() for item in args.init for i in item.split(",") if i.strip()]
    if args.model:
        over["models"] = [m.strip() for item in args.model for m in item.split(",") if m.strip()]
    if args.depth is not None or args.width is not None:
        over["depth"] = args.depth if args.depth is not None else len(cfg.widths)
        over["width"] = args.width if args.width is not None else (cfg.widths[0] if cfg.depths else 128)
    if args.no_act_timing:
        over["time_activations"] = False
    if args.no_layer_quantiles:
        over["layer_quantiles"] = False
    if args.no_normalize:
        over["normalize"] = False
    if args.compile:
        over["compile"] = True
    if args.torch_defaults:
        over.update(C.TORCH_DEFAULTS)
        if args.init:
            over["inits"] = [i.strip() for item in args.init for i in item.split(",") if i.strip()]
    if args.train_size is not None and args.train_sizes is None:
        over["train_sizes"] = []
    cfg = C.from_mapping(over, base=cfg, source="flags")
    return C.validate(cfg)


def executor_options(args: argparse.Namespace) -> tuple[str, dict]:
    """The executor and its options; options of the other executor are refused, not ignored."""
    from empirical import config as C

    executor = args.executor or "local"
    ray_given = [f for f, v in (("--ray-address", args.ray_address), ("--ray-cpus-per-task", args.ray_cpus_per_task),
                                ("--ray-gpus-per-task", args.ray_gpus_per_task)) if v is not None]
    if executor == "local" and ray_given:
        raise C.ConfigError(f"{ray_given[0]} applies to --executor ray only; add --executor ray or drop it")
    if executor == "ray":
        if args.workers is not None:
            raise C.ConfigError("--workers applies to the local executor only; Ray sizes its own pool")
        return executor, dict(address=args.ray_address,
                              cpus_per_task=1.0 if args.ray_cpus_per_task is None else args.ray_cpus_per_task,
                              gpus_per_task=0.0 if args.ray_gpus_per_task is None else args.ray_gpus_per_task)
    workers = 1 if args.workers is None else args.workers
    if workers < 1:
        raise C.ConfigError(f"--workers must be a positive integer, got {workers}")
    return executor, (dict(workers=workers) if workers != 1 else {})


def _split_acts(item: str) -> list[str]:
    """Split on commas that are not inside parentheses (formulas like max(0, x) keep theirs)."""
    out, depth, cur = [], 0, ""
    for ch in item:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [o for o in out if o.strip()]


def print_summary(folder: str) -> None:
    """The seeds' summary table of the study folder (model | accuracy ± CI | time per epoch | first-layer
    gradient | verdicts), with the study's claims checked by ``empirical.analysis``."""
    import pandas as pd

    from empirical.analysis import seeds_table
    from empirical.analysis.claims import predict
    from empirical.analysis.results_schema import load_study

    runs = pd.read_csv(f"{folder}/runs.csv")
    claims = predict([load_study(folder)])
    print(seeds_table.format_text(seeds_table.summary_rows(runs, claims)))
    c = {}
    for cl in claims:
        c.setdefault(cl.kind, {}).setdefault(cl.verdict, 0)
        c[cl.kind][cl.verdict] += 1
    print("verdicts per kind: " + "; ".join(
        f"{k} " + ", ".join(f"{n} {v}" for v, n in sorted(c[k].items())) for k in sorted(c) if k != "sanity")
        + (f" | sanity checks apart: " + ", ".join(f"{n} {v}" for v, n in sorted(c['sanity'].items()))
           if "sanity" in c else "")
        + f"; details: python -m empirical.predict {folder}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("\ninterrupted before anything was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    bad_input: tuple = ()
    try:
        from empirical import config as C
        from empirical.data import DataError
        from empirical.resources import ResourceError
        from empirical.results import ResultsError
        from theory.activations import FormulaError, UnknownActivation

        if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:  # loaded: Ctrl-C now saves and exits 130
            signal.signal(signal.SIGINT, signal.default_int_handler)
        bad_input = (C.ConfigError, DataError, ResultsError, FormulaError, UnknownActivation, ResourceError)
        return _main(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every finished group of runs is saved; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except bad_input as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError as exc:
        print(f"error: out of memory while training ({_one_line(exc)[:200]}); finished groups are saved: use a "
              "smaller study (fewer activations per group, a smaller --width or --batch-size) or more memory",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: show it whole
        if _is_oom(exc):
            print(f"error: out of memory while training ({_one_line(exc)[:200]}); finished groups are saved: use a "
                  "smaller study (fewer activations per group, a smaller --width or --batch-size) or more memory",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_INTERNAL


def _main(args: argparse.Namespace) -> int:
    """Train (or reproduce) the study ``args`` describe and print its summary; exceptions go to ``main``."""
    from empirical import config as C
    from empirical import reproduce
    from empirical.study import run_study

    log = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    if args.reproduce:
        given = [k for k in _FLAG_KEYS + ("preset", "config", "activation", "init", "model", "depth", "width")
                 if getattr(args, k) is not None]
        if given:
            raise C.ConfigError(f"--reproduce takes the whole study from its study.json; drop "
                                f"{', '.join('--' + k.replace('_', '-') for k in given)}")
        cfg = reproduce.config_of(args.reproduce)
        reproduce.fresh_folder(cfg)
    else:
        cfg = config_from_args(args)
    executor, opts = executor_options(args)
    if executor == "ray":
        from empirical.ray_executor import preflight as ray_preflight

        ray_preflight(cfg, **opts)  # bad Ray options or no Ray: one line, nothing written
    outcome = run_study(cfg, progress=not args.no_progress, executor=executor, log=log, **opts)
    log(f"{outcome.trained} runs trained, {outcome.skipped} reused, in {outcome.wall_time_s:.1f} s; "
        f"results in {outcome.folder}/")
    print_summary(outcome.folder)
    if args.reproduce:
        result = reproduce.compare(args.reproduce, outcome.folder)
        print(result.report(args.reproduce, outcome.folder))
        return 0 if result.identical else EXIT_NOT_REPRODUCED
    return 0


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


def _one_line(exc: BaseException) -> str:
    return printable(" ".join(str(exc).split()))


if __name__ == "__main__":
    sys.exit(main())
