"""Reliability: diverging runs, unique runs, targets that are not regular files, disk full, the lock,
umask, debris, damaged inputs of every kind: one line and exit 2, or a correct result."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from empirical import config as C
from empirical import resources
from empirical.results import Lock, ResultsError, Store, atomic_write
from empirical.run import main as run_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--widths", "8", "--epochs", "1", "--train-size", "40", "--batch-size", "20", "--probe-every", "2",
        "--probe-size", "16", "--no-progress", "--no-act-timing", "--quiet"]


def one_line(capsys, code, *words):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- diverging runs

def test_diverging_adam_is_recorded_and_the_group_finishes(tmp_path, capsys):
    code = run_main(["--out-dir", str(tmp_path), "--name", "d", "--lr", "1e30", "--activation", "relu,tanh",
                     "--seeds", "1", *TINY])
    assert code == 0, capsys.readouterr().err
    import pandas as pd

    runs = pd.read_csv(tmp_path / "d" / "runs.csv")
    assert len(runs) == 2 and set(runs.activation) == {"relu", "tanh"}
    relu = runs[runs.activation == "relu"].iloc[0]
    assert relu.status == "diverged" and relu.diverged_step >= 1
    assert json.loads((tmp_path / "d" / "study.json").read_text())["status"] == "complete"
    layers = pd.read_csv(tmp_path / "d" / "layers.csv")
    assert (layers[layers.run_id == relu.run_id].step < relu.diverged_step).all()


@settings(max_examples=25, deadline=None)
@given(exps=st.lists(st.integers(-45, 38), min_size=4, max_size=4),
       poison=st.sampled_from([None, float("inf"), float("-inf"), float("nan")]),
       model=st.sampled_from(["mlp", "tinyvgg"]))
def test_probes_survive_any_weights(exps, poison, model):
    """Every metric of every run is a number or NaN, for weights of any scale, finite or not."""
    from empirical import probes
    from empirical.models import Arch, StackedModel, init_params, torch_activation
    from theory import activations as registry

    arch = Arch(model, (1, 8, 8), 10, (6, 5), 2)
    acts = ["relu", "tanh"]
    model_ = StackedModel(arch, [torch_activation(registry.lookup(a)) for a in acts], [(0, 2), (2, 4)])
    params = init_params(arch, [(a, "he", s, 0.0) for a in acts for s in (1, 2)])
    with torch.no_grad():
        for i, p in enumerate(params):
            p.mul_(torch.tensor([10.0 ** e for e in exps]).view(-1, *[1] * (p.dim() - 1)))
            if poison is not None and i == 2:
                p[1].view(-1)[0] = poison
    x = torch.randn(7, 1, 8, 8)
    y = torch.arange(7) % 10
    out = probes.probe(model_, params, x, y, 0.01)
    for metric, by_layer in out.items():
        for layer, v in by_layer.items():
            assert v.shape == (4,), (metric, layer)
    spec = out["weight_spectral_norm"]
    for layer, v in spec.items():
        w = params[2 * (layer - 1)].detach().double()
        ref = torch.tensor([torch.linalg.matrix_norm(m, ord=2) if torch.isfinite(m).all() else float("nan")
                            for m in w], dtype=torch.float64)
        assert torch.isnan(v[~torch.isfinite(w).flatten(1).all(1)]).all()
        ok = torch.isfinite(ref) & (ref < 3e38) & (ref > torch.finfo(torch.float32).tiny)  # normal float32 results
        assert torch.allclose(v.double()[ok], ref[ok], rtol=1e-4, atol=0), (layer, v, ref)



@settings(max_examples=60, deadline=None)
@given(low=st.integers(-149, 127), span=st.integers(0, 60), top=st.floats(0.5, 1.0, exclude_max=True),
       e=st.integers(-300, 300), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2 ** 16))
@example(low=-121, span=0, top=0.5, e=255, dtype=torch.float32, seed=0)   # a subnormal weight times 2^255 (CI)
def test_power_of_two_scaling_equals_ldexp_at_every_magnitude(low, span, top, e, dtype, seed):
    """The spectral norm's rescaling equals torch.ldexp bit for bit: subnormal weights, weights near the largest
    float, results that round to subnormals or to 0, shifts outside the dtype's range of powers of two."""
    from empirical.probes import _times_pow2

    g = torch.Generator().manual_seed(seed)
    mant = torch.rand(3, 6, 5, generator=g, dtype=torch.float64) * 2 - 1
    expo = torch.randint(low, min(low + span, 127) + 1, (3, 6, 5), generator=g)
    w = torch.ldexp(mant, expo).to(dtype)
    w[0, 0, 0] = top * 2.0 ** min(low + span, 127)
    _, k = torch.frexp(w.abs().flatten(1).amax(dim=1))
    for shift in (-k, *(torch.full((3,), n, dtype=torch.int32) for n in (e, -128, -127, 128, 149))):
        assert torch.equal(_times_pow2(w, shift), torch.ldexp(w, shift[:, None, None]))


# --------------------------------------------------------------------------- unique runs

@pytest.mark.parametrize("argv, words", [
    (["--seeds", "1,1"], ["seeds", "1", "twice"]),
    (["--seeds", "1", "--seeds", "1"], ["seeds", "1", "twice"]),
    (["--init", "he,he"], ["inits", "he", "twice"]),
    (["--model", "mlp", "--model", "mlp"], ["models", "mlp", "twice"]),
    (["--activation", "relu,relu"], ["relu", "more than once"]),
    (["--activation", "silu", "--activation", "swish"], ["silu", "swish"]),
], ids=["seeds", "seeds-repeated", "inits", "models", "activations", "alias"])
def test_duplicate_runs_are_refused(argv, words, tmp_path, capsys):
    one_line(capsys, run_main(["--out-dir", str(tmp_path), *argv, *TINY]), *words)
    assert not any(tmp_path.iterdir())


def test_repeated_list_options_accumulate(tmp_path):
    from empirical.run import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--seeds", "1", "--seeds", "2,3", "--widths", "4",
                                                      "--widths", "5", "--init", "he", "--init", "lecun"]))
    assert cfg.seeds == (1, 2, 3) and cfg.widths == (4, 5) and cfg.inits == ("he", "lecun")


# --------------------------------------------------------------------------- targets that are not regular files

@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_a_target_that_is_not_a_regular_file_is_refused(kind, tmp_path, capsys):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    study = tmp_path / "out" / "s"
    study.mkdir(parents=True)
    target = study / "study.json"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(outside)
    else:
        target.mkdir()
    line = one_line(capsys, run_main(["--out-dir", str(tmp_path / "out"), "--name", "s", *TINY]), str(target))
    assert "not a regular file" in line
    assert outside.read_text() == "keep me"
    assert (target.is_symlink() if kind == "symlink" else target.exists())
    with pytest.raises(ResultsError, match="not a regular file"):
        atomic_write(str(target), "x")


def test_atomic_write_refuses_a_device_node_or_fifo_never_replacing_it(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(ResultsError, match="FIFO"):
        atomic_write(str(fifo), "data")
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    with pytest.raises(ResultsError, match="character device"):
        atomic_write("/dev/null", "data")
    assert not os.path.isfile("/dev/null")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_symlinked_parts_folder_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_main(["--out-dir", str(tmp_path / "out"), "--name", "s", *TINY]) == 0
    parts = tmp_path / "out" / "s" / "parts"
    shutil.rmtree(parts)
    parts.symlink_to(elsewhere)
    (tmp_path / "out" / "s" / ".merged.json").unlink()
    capsys.readouterr()
    code = run_main(["--out-dir", str(tmp_path / "out"), "--name", "s", *TINY])
    one_line(capsys, code, "parts", "not a folder")
    assert not any(elsewhere.iterdir())


# --------------------------------------------------------------------------- disk full

def _mount_tmpfs(path, size):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return done.returncode == 0, done.stderr.strip()


def test_disk_full_is_one_line_and_leaves_no_debris(tmp_path, capsys):
    small = tmp_path / "small"
    ok, why = _mount_tmpfs(small, "48k")
    if not ok:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({why or 'mount failed'})")
    try:
        code = run_main(["--out-dir", str(small), "--name", "s", "--activation", "relu,tanh,sigmoid",
                         "--seeds", "1,2", *TINY])
        line = one_line(capsys, code, "No space left on device", str(small))
        assert "cannot write" in line
        leftovers = [p for p in small.rglob("*") if p.name.startswith(".tmp-")]
        assert not leftovers
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


# --------------------------------------------------------------------------- the lock

def test_stale_lock_takeover_never_gives_two_holders(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / ".lock").write_text("somehost 999999\n")  # stale: nobody holds the flock
    for _ in range(20):
        winners, barrier = [], threading.Barrier(8)

        def contend():
            lock = Lock(str(folder))
            barrier.wait()
            try:
                lock.acquire()
            except ResultsError:
                return
            winners.append(lock)

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1
        winners[0].release()


# --------------------------------------------------------------------------- files, modes, debris

def test_files_follow_the_umask_and_debris_is_removed(tmp_path):
    out = tmp_path / "out"
    study = out / "s"
    argv = ["--out-dir", str(out), "--name", "s", *TINY]
    umask = "import os, sys; os.umask(0o027); from empirical.run import main; sys.exit(main(sys.argv[1:]))"
    first = subprocess.run([sys.executable, "-c", umask, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (study / "parts" / ".tmp-0123abcd-x").mkdir()
    (study / "parts" / ".tmp-0123abcd-x" / "run.json").write_text("half")
    (study / ".tmp-abc-runs.csv").write_text("half")
    again = subprocess.run([sys.executable, "-c", umask, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    names = [p for p in study.rglob("*")]
    assert not [p for p in names if p.name.startswith(".tmp-")]
    for p in names:
        want = 0o750 if p.is_dir() else 0o640
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))


def test_a_folder_that_is_not_a_study_is_refused(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "thesis.tex").write_text("precious")
    line = one_line(capsys, run_main(["--out-dir", str(tmp_path), "--name", "s", *TINY]), "holds no study.json")
    assert "--name" in line
    assert (tmp_path / "s" / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["thesis.tex"]


# --------------------------------------------------------------------------- resource guard

def test_memory_estimate_refuses_before_any_work(tmp_path, capsys):
    code = run_main(["--out-dir", str(tmp_path), "--depth", "200", "--width", "16384", *TINY[2:]])
    one_line(capsys, code, "needs about", "TB", "available")
    assert not any(tmp_path.iterdir())


def test_memory_estimate_is_an_upper_bound_of_the_parameters():
    cfg = C.validate(C.StudyConfig(widths=(100, 50), activations=("relu", "tanh")))
    est = resources.estimate(cfg)
    params = (64 + 1) * 100 + (100 + 1) * 50 + (50 + 1) * 10
    runs = 2 * len(cfg.seeds)  # one worker trains every seed of the model in one program
    assert est.params_per_run == params and est.group_runs == runs
    assert est.state_bytes == 4 * runs * params * 4
    per_seed = resources.estimate(cfg, workers=2)  # one program per seed, two at a time
    assert per_seed.group_runs == 2 and per_seed.state_bytes == 2 * 4 * 2 * params * 4
    with pytest.raises(resources.ResourceError, match="needs about"):
        resources.check(cfg, available=1000)


def test_an_immutable_table_is_one_line(tmp_path, capsys):
    argv = ["--out-dir", str(tmp_path), "--name", "s", "--activation", "relu", "--seeds", "1,2", *TINY]
    assert run_main(argv) == 0
    runs = tmp_path / "s" / "runs.csv"
    folder = tmp_path / "s"
    import shutil as _sh

    _sh.rmtree(next((folder / "parts").iterdir()))  # one group to redo, so runs.csv must be rewritten
    made = subprocess.run(["chattr", "+i", str(runs)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file immutable here ({made.stderr.strip() or 'chattr failed'})")
    try:
        capsys.readouterr()
        one_line(capsys, run_main(argv), "cannot write", str(runs))
        assert not [p for p in folder.rglob(".tmp-*")]
        assert json.loads((folder / "study.json").read_text())["status"] == "incomplete"
    finally:
        subprocess.run(["chattr", "-i", str(runs)], capture_output=True)


def _to_earlier_layout(folder):
    """Rewrite a study folder into the one-run layout of earlier versions: parts/<run_id>/ with its files and a
    manifest of their sums, and no groups in study.json (the merged tables are left as they are)."""
    from empirical.results import RUN_FILES

    parts = folder / "parts"
    for group in [p for p in parts.iterdir() if p.is_dir()]:
        manifest = json.loads((group / "manifest.json").read_text())
        for rid in manifest["runs"]:
            shutil.copytree(group / rid, parts / rid)
            sums = {name: manifest["files"][f"{rid}/{name}"] for name in RUN_FILES}
            (parts / rid / "manifest.json").write_text(json.dumps(sums))
        shutil.rmtree(group)
    info = json.loads((folder / "study.json").read_text())
    info.pop("groups")
    (folder / "study.json").write_text(json.dumps(info, indent=1))


def test_a_finished_folder_of_the_earlier_one_run_layout_is_reused_byte_for_byte(tmp_path, capsys):
    argv = ["--out-dir", str(tmp_path), "--name", "old", "--activation", "relu,tanh", "--seeds", "1,2", *TINY]
    assert run_main(argv) == 0, capsys.readouterr().err
    folder = tmp_path / "old"
    _to_earlier_layout(folder)
    tables = {t: (folder / f"{t}.csv").read_bytes() for t in ("runs", "epochs", "steps", "layers")}
    assert run_main(argv) == 0, capsys.readouterr().err
    for t, data in tables.items():
        assert (folder / f"{t}.csv").read_bytes() == data
    info = json.loads((folder / "study.json").read_text())
    assert info["status"] == "complete" and "groups" not in info      # a rerun with nothing to do writes nothing
    shutil.rmtree(next(p for p in (folder / "parts").iterdir() if p.is_dir()))
    capsys.readouterr()
    one_line(capsys, run_main(argv), "earlier version", "--name")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_power_of_two_scaling_equals_numpys_exact_ldexp_over_the_whole_exponent_range(dtype):
    """numpy.ldexp rounds w·2^e once for any integer e; every magnitude of w from the smallest subnormal to the
    largest float, against shifts past both ends of the dtype's powers of two."""
    import numpy as np

    from empirical.probes import _times_pow2
    fi = np.finfo(np.float32 if dtype == torch.float32 else np.float64)
    bits = -int(fi.minexp) + int(fi.nmant)                                  # 149 (float32), 1074 (float64)
    g = torch.Generator().manual_seed(0)
    for low in range(-bits, int(fi.maxexp), 11):
        w = torch.ldexp(torch.rand(3, 4, 5, generator=g, dtype=torch.float64) * 2 - 1,
                        torch.full((3, 4, 5), low)).to(dtype)
        for e in range(-2 * bits - 300, 2 * bits + 300, 37):
            shift = torch.full((3,), e, dtype=torch.int32)
            with np.errstate(over="ignore", under="ignore"):
                ref = np.ldexp(w.numpy(), np.full(w.shape, e, dtype=np.int32))
            assert torch.equal(_times_pow2(w, shift), torch.from_numpy(ref)), (low, e)
