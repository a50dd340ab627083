"""MkDocs hook: the report's mkdocs events and the cache of generated pages' figures and numbers.

Nothing numeric in the report is typed by hand. At every build the pages are built by
``empirical.analysis.report_pages`` from ``theory`` and the results folder (env ``ACTLAB_RESULTS``,
default ``results/`` in the repository); this hook adds them as virtual files (``File.generated``, never
written into ``docs/``) and substitutes markers ``<!-- actlab:NAME -->`` in hand-written pages (an unknown
NAME fails the build). Figures and derived numbers are cached under ``.cache/actlab-docs/`` (env
``ACTLAB_DOCS_CACHE``) keyed on a hash of every input they depend on: the source of ``theory/``, of
``empirical/analysis/`` and of this file, the versions of the numeric and plotting libraries, and the
bytes of the results files read; so ``mkdocs serve`` rebuilds stay fast and a changed input is never
served stale.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE_VERSION = "2"
MARKER = re.compile(r"<!--\s*actlab:([a-z_]+)\s*-->")
# Libraries whose version can change a cached figure or number.
KEY_PACKAGES = ("numpy", "scipy", "sympy", "mpmath", "pandas", "matplotlib")

log = logging.getLogger("mkdocs.hooks.actlab")
_STATE: dict[str, Any] = {}


def _ensure_path() -> None:
    # MkDocs restores sys.path after loading a hook, so the repository root is added per event.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------------------------
# Locations, keys and the cache.

def results_root() -> Path:
    """The results folder: env ACTLAB_RESULTS (relative to the working directory) or <repo>/results."""
    env = os.environ.get("ACTLAB_RESULTS")
    return Path(env).expanduser().resolve() if env else REPO / "results"


def cache_root() -> Path:
    env = os.environ.get("ACTLAB_DOCS_CACHE")
    return Path(env).expanduser().resolve() if env else REPO / ".cache" / "actlab-docs"


def code_files() -> list[Path]:
    """Every source file a generated page or figure depends on: theory/, empirical/analysis/, this hook."""
    return (sorted((REPO / "theory").rglob("*.py")) + sorted((REPO / "empirical" / "analysis").rglob("*.py"))
            + [Path(__file__).resolve()])


def _versions() -> str:
    from importlib import metadata

    out = [sys.version.split()[0]]
    for name in KEY_PACKAGES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=none")
    return ";".join(out)


def cache_key(data_files=()) -> str:
    """Hash of the code (``code_files``), library versions and the given data files' names and bytes."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(_versions().encode())
    for p in list(code_files()) + sorted(Path(q) for q in data_files):
        h.update(str(p.relative_to(p.anchor)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _cached_dir(kind: str, key: str, build, job: tuple | None = None) -> Path | None:
    """``cache_root()/kind-key``, built by ``build(tmpdir)`` once and then reused.

    Under ``mkdocs serve`` a missing entry with a ``job`` (a picklable ``(builder, args)`` for
    ``report_pages.build_job``) is drawn in a worker process instead, and None is returned: the page is
    served at once with a note, and the finished entry triggers a rebuild (``_trigger``).
    """
    root = cache_root()
    final = root / f"{kind}-{key}"
    if (final / "done").is_file():
        log.debug("actlab: %s from cache %s", kind, final)
        return final
    if _SERVE.get("on") and job is not None:
        _submit(final, job)
        return None
    t0 = time.perf_counter()
    from empirical.analysis.report_pages import build_into
    build_into(final, build)
    _prune(root, kind, keep=final)
    log.info("actlab: computed %s in %.1f s (cached in %s)", kind, time.perf_counter() - t0, _display(final))
    return final


# ---------------------------------------------------------------------------------------------
# mkdocs serve: pages first, figures and theory in worker processes, then a rebuild.

_SERVE: dict[str, Any] = {}


def _trigger() -> Path:
    return cache_root() / ".serve-ready"


def _submit(final: Path, job: tuple) -> None:
    pending = _SERVE.setdefault("pending", {})
    if str(final) in pending:
        return
    if not _SERVE.get("built"):                    # the first build is served before any drawing starts
        _SERVE.setdefault("queue", {})[str(final)] = (final, job)
        return
    if "pool" not in _SERVE:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from empirical.analysis.report_pages import exit_with_parent

        _SERVE["pool"] = ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1),
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=exit_with_parent, initargs=(os.getpid(),))
    from empirical.analysis.report_pages import build_job

    cache_root().mkdir(parents=True, exist_ok=True)
    fut = _SERVE["pool"].submit(build_job, str(final), job[0], *job[1])
    pending[str(final)] = fut

    def done(f) -> None:
        pending.pop(str(final), None)
        if f.cancelled():                              # the server is shutting down
            return
        if f.exception() is not None:
            log.warning("actlab: drawing %s failed: %s", final.name, f.exception())
        if not pending:
            _trigger().write_text(str(time.time()))    # watched by the server: rebuild with the cache
    fut.add_done_callback(done)
    log.info("actlab: drawing %s in the background; the site reloads when it is ready", final.name)


def pending() -> bool:
    return bool(_SERVE.get("pending"))


def _prune(root: Path, kind: str, keep: Path, n: int = 6) -> None:
    old = sorted((p for p in root.glob(f"{kind}-*") if p != keep), key=lambda p: p.stat().st_mtime)
    for p in old[:-n] if len(old) > n else []:
        shutil.rmtree(p, ignore_errors=True)


def _display(p: Path) -> str:
    from empirical.analysis.report_pages import display
    return display(p)


def theory_bundle() -> tuple[Path, dict]:
    """The cached theory bundle (theory.json and the activation and mean-field figures)."""
    import json

    from empirical.analysis.report_pages import build_theory

    folder = _cached_dir("theory", cache_key(), build_theory, job=("theory", ()))
    if folder is None:
        return None, {"activations": [], "pending": True}
    return folder, json.loads((folder / "theory.json").read_text())


def study_figures(study: Path) -> Path:
    """The cached figures of one study folder (``figures.make_all``), keyed on its files too."""
    from empirical.analysis.figures import make_all

    files = [p for p in study.iterdir() if p.is_file() and not p.name.startswith(".")]
    return _cached_dir(f"study-{study.name}", cache_key(files), lambda out: make_all(study, out),
                       job=("study", (str(study),)))


def prediction_figures(root: Path, found: list[Path], pred) -> Path:
    """The cached predicted-vs-measured figures, keyed on every predictions.csv read."""
    from empirical.analysis.report_pages import draw_prediction_figures
    from empirical.analysis.results_schema import prediction_files

    return _cached_dir("predictions", cache_key(prediction_files(root, found)),
                       lambda out: draw_prediction_figures(pred, out), job=("predictions", (pred,)))


# ---------------------------------------------------------------------------------------------
# MkDocs events.

def _nav_section(nav: list, index: str) -> list | None:
    for item in nav or []:
        if isinstance(item, dict):
            for v in item.values():
                if isinstance(v, list):
                    if index in v:
                        return v
                    found = _nav_section(v, index)
                    if found is not None:
                        return found
    return None


def on_config(config, **_):
    _ensure_path()
    from empirical.analysis.results_schema import study_folders
    from theory.activations import all_activations

    acts = all_activations()
    root = results_root()
    found = study_folders(root)
    _STATE.clear()
    _STATE.update(acts=acts, root=root, studies=found)
    section = _nav_section(config.nav, "activations/index.md")
    if section is not None:
        section.extend({a.label: f"activations/{a.name}.md"} for a in acts)
    section = _nav_section(config.nav, "experiments/index.md")
    if section is not None:
        section.extend({s.name: f"experiments/{s.name}.md"} for s in found)
    return config


def on_files(files, config, **_):
    _ensure_path()
    from mkdocs.structure.files import File

    key = _plan_key()
    got = _load_plan(key)
    if got is not None:
        plan, snippets = got
        PLANS["disk"] += 1
    else:
        plan, snippets, complete, dirs = _plan()
        PLANS["computed"] += 1
        if complete:
            _save_plan(key, plan, snippets, dirs)
        elif _SERVE.get("on"):
            # pages and figures still being drawn: links to them cannot resolve yet, which is no warning
            import logging

            config.validation.links.not_found = min(config.validation.links.not_found, logging.INFO)
            config.validation.links.anchors = min(config.validation.links.anchors, logging.INFO)
    for uri, content, src in plan:
        files.append(File.generated(config, uri, content=content) if src is None
                     else File.generated(config, uri, abs_src_path=src))
    _STATE["snippets"] = snippets
    return files


PLANS = {"computed": 0, "disk": 0}    # where each build's generated pages came from


def _plan_key() -> str:
    """Content key of the generated pages: the code, the library versions, every file of every study folder and
    the predictions read, and where the results and the cache are."""
    from empirical.analysis.results_schema import prediction_files

    root, found = _STATE["root"], _STATE["studies"]
    files = [p for s in found for p in s.iterdir() if p.is_file() and not p.name.startswith(".")]
    if root.is_dir():
        files += [Path(p) for p in prediction_files(root, found)]
    return hashlib.sha256(f"{cache_key(sorted(set(files)))}|{root}|{cache_root()}".encode()).hexdigest()[:16]


def _load_plan(key: str) -> tuple[list, dict] | None:
    """The generated pages cached by ``_save_plan``, if every figure folder they use still exists."""
    import json

    path = cache_root() / f"pages-{key}" / "plan.json"
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all(Path(d).is_dir() for d in got["dirs"]):
        return None
    log.debug("actlab: generated pages from cache %s", path.parent)
    return [tuple(x) for x in got["plan"]], got["snippets"]


def _save_plan(key: str, plan: list, snippets: dict, dirs: list) -> None:
    import json

    final = cache_root() / f"pages-{key}"
    final.mkdir(parents=True, exist_ok=True)
    tmp = final / f".plan-{os.getpid()}.json"
    tmp.write_text(json.dumps({"plan": plan, "snippets": snippets, "dirs": dirs}), encoding="utf-8")
    os.replace(tmp, final / "plan.json")
    _prune(cache_root(), "pages", keep=final)


def _plan() -> tuple[list, dict, bool, list]:
    """The generated files as ``(uri, markdown, None)`` or ``(uri, None, source path)``, the markers'
    snippets, whether nothing was left to draw in the background, and the cache folders used."""
    from empirical.analysis import report_pages as pages
    from empirical.analysis.results_schema import load_predictions

    plan: list[tuple[str, str | None, str | None]] = []
    dirs: list[str] = []

    def add_page(uri: str, md: str) -> None:
        plan.append((uri, md, None))

    def add_dir(src: Path, dest: str) -> None:
        dirs.append(str(src))
        for p in sorted(src.rglob("*")):
            if p.is_file() and p.suffix in (".png", ".svg", ".json", ".csv"):
                plan.append((f"{dest}/{p.relative_to(src).as_posix()}", None, str(p)))

    folder, bundle = theory_bundle()
    complete = folder is not None
    for e in bundle["activations"]:
        add_page(f"activations/{e['name']}.md", pages.activation_page(e))
    if folder is None:
        for a in _STATE["acts"]:
            add_page(f"activations/{a.name}.md", f"# {a.label}\n\n{pages.PENDING_NOTE}\n")
    else:
        add_dir(folder / "figures", "activations/figures")
        if (folder / "meanfield").is_dir():
            add_dir(folder / "meanfield", "figures")

    root, found = _STATE["root"], _STATE["studies"]
    damaged: dict[str, str] = {}
    pred = load_predictions(root, found, damaged) if root.is_dir() else None
    pred_figs = None
    if pred is not None and len(pred):
        try:
            pred_figs = prediction_figures(root, found, pred)
            if pred_figs is not None:
                add_dir(pred_figs, "figures/predictions")
            else:
                complete = False
        except Exception as exc:  # noqa: BLE001 - damaged predictions must not break the report
            damaged["predictions.csv"] = _reason(exc)
            pred_figs = None
    figdirs, drawn, broken = {}, {}, {}
    for s in found:  # one damaged study must not break the report: its page says what is wrong
        try:
            drawn[s.name] = study_figures(s)
            complete = complete and drawn[s.name] is not None
        except Exception as exc:  # noqa: BLE001
            broken[s.name] = exc
    # The first build of ``mkdocs serve`` on a fresh cache is served at once: the pages that take seconds of
    # tables (each study's, the predictions') say "being computed" until the drawing finishes and rebuilds.
    light = _SERVE.get("on") and not _SERVE.get("built") and bool(_SERVE.get("queue"))
    complete = complete and not light
    for s in found:
        figdir = drawn.get(s.name)
        try:
            if s.name in broken:
                raise broken[s.name]
            page = (f"# Study `{s.name}`\n\n{pages.PENDING_NOTE}\n" if light
                    else pages.study_page(s, figdir, f"figures/{s.name}", pred))
        except Exception as exc:  # noqa: BLE001
            damaged[s.name] = _reason(exc)
            log.info("actlab: study %s left out of the report: %s", s, damaged[s.name])
            add_page(f"experiments/{s.name}.md", pages.damaged_study_page(s, damaged[s.name]))
            continue
        if figdir is not None:
            figdirs[s.name] = figdir
            add_dir(figdir, f"experiments/figures/{s.name}")
        add_page(f"experiments/{s.name}.md", page)
    good = [s for s in found if s.name not in damaged]
    snippets = pages.snippets(bundle, root, good, pred, pred_figs, figdirs, damaged=damaged, pending=light)
    return plan, snippets, complete, dirs


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def on_page_markdown(markdown: str, page, config, files, **_):
    snippets = _STATE.get("snippets", {})

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in snippets:
            raise KeyError(f"{page.file.src_uri}: unknown marker <!-- actlab:{key} -->; "
                           f"known: {', '.join(sorted(snippets))}")
        return snippets[key]

    return MARKER.sub(sub, markdown)


def on_startup(command, dirty=False, **_):
    _SERVE["serve"] = command == "serve"
    _SERVE["on"] = command == "serve" and os.environ.get("ACTLAB_SERVE_BACKGROUND", "1") != "0"


def on_nav(nav, config, files, **_):
    if _SERVE.get("serve"):                  # every rebuild runs in this process: reuse unchanged pages' HTML
        from docs_hooks import render_memo

        render_memo.start_build(config, files)
        render_memo.memoise_search(config)
    return nav


def on_pre_page(page, config, files, **_):
    if _SERVE.get("serve"):
        from docs_hooks import render_memo

        render_memo.memoise_render(page)
    return page


def on_post_build(config, **_):
    if _SERVE.get("on") and not _SERVE.get("built"):
        _SERVE["built"] = True
        for final, job in _SERVE.pop("queue", {}).values():
            _submit(final, job)


def on_shutdown(**_):
    pool = _SERVE.pop("pool", None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def on_serve(server, config, builder, **_):
    if _SERVE.get("on"):
        cache_root().mkdir(parents=True, exist_ok=True)
        _trigger().touch()
        server.watch(str(_trigger()))
    for p in (REPO / "theory", REPO / "empirical" / "analysis", results_root()):
        if p.exists():
            server.watch(str(p))
    return server
