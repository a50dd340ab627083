"""Every bad input gets one line on stderr naming the bad value and what is allowed, exit code 2,
no traceback, and nothing written to the results folder."""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from empirical import config as C
from empirical.run import main as run_main
from theory import activations as registry
from theory.__main__ import main as theory_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path, array):
    with open(path, "wb") as fh:
        fh.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def mnist_dir(root, damage=None):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    target = raw / "train-images-idx3-ubyte"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    elif damage == "magic":
        data = bytearray(target.read_bytes())
        data[2] = 0x0D
        target.write_bytes(bytes(data))
    return root


def cifar_dir(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}, protocol=2))
    (folder / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00datatruncated")
    return root


def toml(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return str(path)


RUN_CASES = {
    "unknown activation": (["--activation", "rleu"], ["rleu", "relu"]),
    "misspelled hyphenated activation": (["--activation", "leaky-rleu"], ["leaky-rleu", "leaky_relu"]),
    "unknown data set": (["--dataset", "mnsit"], ["mnsit", "mnist"]),
    "unknown model": (["--model", "mpl"], ["mpl", "mlp"]),
    "unknown optimiser": (["--optimizer", "adamw"], ["adamw", "adam"]),
    "unknown init": (["--init", "kaiming"], ["kaiming", "he"]),
    "unknown preset": (["--preset", "mnist-mpl"], ["mnist-mpl", "mnist-mlp"]),
    "unknown device": (["--device", "tpu"], ["tpu", "cpu"]),
    "zero epochs": (["--epochs", "0"], ["epochs", "0"]),
    "negative epochs": (["--epochs", "-3"], ["epochs", "-3"]),
    "epochs not a number": (["--epochs", "ten"], ["ten"]),
    "zero batch size": (["--batch-size", "0"], ["batch size", "0"]),
    "zero width": (["--widths", "128,0"], ["width", "0"]),
    "negative width": (["--widths", "128,-4"], ["width", "-4"]),
    "zero depth": (["--depth", "0", "--width", "16"], ["depth", "0"]),
    "negative width with depth": (["--depth", "2", "--width", "-3"], ["width", "-3"]),
    "nan learning rate": (["--lr", "nan"], ["learning rate", "nan"]),
    "infinite learning rate": (["--lr", "inf"], ["learning rate", "inf"]),
    "zero learning rate": (["--lr", "0"], ["learning rate", "> 0"]),
    "negative learning rate": (["--lr", "-0.1"], ["learning rate", "-0.1"]),
    "learning rate not a number": (["--lr", "fast"], ["fast"]),
    "train size below classes": (["--train-size", "5"], ["train_size=5", "10"]),
    "train size above data set": (["--train-size", "100000"], ["100000", "1348"]),
    "negative sigma_b2": (["--sigma-b2", "-1"], ["sigma_b2", "-1"]),
    "momentum above one": (["--optimizer", "sgd", "--momentum", "2"], ["momentum", "2"]),
    "zero eps": (["--eps", "0"], ["eps"]),
    "seeds not integers": (["--seeds", "a,b"], ["a,b"]),
    "negative seed": (["--seeds", "-1"], ["seed", "-1"]),
    "study name with ..": (["--name", ".."], ["..", "study name"]),
    "study name with /": (["--name", "a/b"], ["a/b"]),
    "formula running code": (["--activation", "__import__('os').system('echo pwned')"], ["not allowed"]),
    "formula with a singularity": (["--activation", "1/x"], ["singular", "1/x"]),
    "formula not depending on x": (["--activation", "exp(2)"], ["does not depend on x"]),
    "zero workers": (["--workers", "0"], ["workers", "0"]),
    "abbreviated option": (["--seed", "1"], ["unrecognized", "--seed"]),
    "single-valued option twice": (["--name", "a", "--name", "b"], ["--name", "twice", "'a'", "'b'"]),
    "name ending in a newline": (["--name", "study\n"], ["study name", "'study\\n'"]),
    "empty preset": (["--preset", ""], ["--preset", "empty"]),
    "empty config path": (["--config", ""], ["--config", "empty"]),
    "momentum with adam": (["--momentum", "0.9"], ["momentum", "adam", "--optimizer sgd"]),
    "sigma_b2 without an init that uses it": (["--init", "he", "--sigma-b2", "0.1"], ["sigma_b2", "critical"]),
    "depth with widths": (["--depth", "3", "--width", "8", "--widths", "8,8"], ["--widths", "--depth"]),
    "ray option with the local executor": (["--ray-address", "auto"], ["--ray-address", "--executor ray"]),
    "ray cpus with the local executor": (["--ray-cpus-per-task", "2"], ["--ray-cpus-per-task", "--executor ray"]),
    "workers with ray": (["--executor", "ray", "--workers", "2"], ["--workers", "local"]),
    "depth far too deep": (["--depth", "100000", "--width", "16"], ["depth 100000", "at most 1000"]),
    "width far too wide": (["--widths", "100000"], ["width 100000", "at most 16384"]),
    "too many channels": (["--model", "tinyvgg", "--channels", "100000"], ["channels 100000", "at most 1024"]),
    "terminal escape in a value": (["--dataset", "\x1b[2J\x1b[31mmnist"], ["\\x1b[2j"]),
    "study too large for memory": (["--depth", "200", "--width", "16384"], ["needs about", "available"]),
    "seed too large": (["--seeds", str(2**40)], ["seed", str(2**40)]),
    "no edge of chaos": (["--init", "critical", "--activation", "gelu", "--sigma-b2", "0.05", "--epochs", "1"],
                         ["gelu", "edge of chaos"]),
}


@pytest.mark.parametrize("case", list(RUN_CASES), ids=list(RUN_CASES))
def test_run_cli_rejects(case, tmp_path, capsys):
    argv, words = RUN_CASES[case]
    out = tmp_path / "out"
    code = run_main([*argv, "--out-dir", str(out), "--no-progress"])
    err = capsys.readouterr().err
    _assert_one_line(code, err, words)
    assert not out.exists() or not any(out.rglob("*")), "something was written for a bad input"


def _assert_one_line(code, err, words):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


FILE_CASES = {
    "name of the wrong type": ("name = 5\n", ["name must be a string", "5", "study.toml"]),
    "out_dir of the wrong type": ("out_dir = 3\n", ["out_dir must be a string", "study.toml"]),
    "data_dir of the wrong type": ("data_dir = [1]\n", ["data_dir must be a string", "study.toml"]),
    "boolean given as a string": ('download = "no"\n', ["download must be true or false", "'no'", "study.toml"]),
    "integer given as a boolean": ("epochs = true\n", ["epochs must be an integer", "true", "study.toml"]),
    "number given as a string": ('lr = "fast"\n', ["lr must be a number", "fast", "study.toml"]),
    "list given as a scalar": ('seeds = 1\n', ["seeds must be a list", "study.toml"]),
    "name given twice": ('name = "a"\nname = "b"\n', ["not valid TOML", "study.toml"]),
    "name at the top and in [study]": ('name = "a"\n[study]\nname = "b"\n', ["name", "twice", "study.toml"]),
    "unknown table": ('[training]\nepochs = 3\n', ["unknown table", "training", "study.toml"]),
    "preset of the wrong type": ("preset = 3\n", ["preset must be a string", "study.toml"]),
    "duplicate seeds": ("seeds = [1, 1]\n", ["seeds", "twice"]),
    "too many runs": ("seeds = [" + ",".join(map(str, range(10000))) + ']\ninits = ["he", "lecun"]\n',
                      ["140,000 runs", "at most 100,000"]),
    "list too long": ("seeds = [" + ",".join(map(str, range(10001))) + "]\n", ["10,001 entries", "10,000"]),
    "misspelled TOML key": ("epoch = 3\n", ["epoch", "epochs"]),
    "malformed TOML": ("epochs = [3\n", ["not valid TOML"]),
    "wrong type in TOML": ('epochs = "ten"\n', ["epochs", "ten"]),
    "activations not strings in TOML": ("activations = [1, 2]\n", ["activation", "1"]),
    "unknown preset in TOML": ('preset = "fast"\n', ["fast", "preset"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES), ids=list(FILE_CASES))
def test_config_file_rejects(case, tmp_path, capsys):
    text, words = FILE_CASES[case]
    out = tmp_path / "out"
    code = run_main(["--config", toml(tmp_path, text), "--out-dir", str(out), "--no-progress"])
    _assert_one_line(code, capsys.readouterr().err, words)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["fifo", "folder", "binary", "huge"])
def test_config_path_that_is_not_a_small_text_file(kind, tmp_path, capsys):
    path = tmp_path / "study.toml"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
    elif kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"name = \"a\"\x00\xff\xfe\x00")
    else:
        path.write_text("seeds = [" + ",".join(map(str, range(400000))) + "]\n")
    words = {"fifo": ["not a regular file"], "folder": ["not a regular file"], "binary": ["not UTF-8"],
             "huge": ["bytes", "at most"]}[kind]
    code = run_main(["--config", str(path), "--out-dir", str(tmp_path / "o")])
    _assert_one_line(code, capsys.readouterr().err, [str(path), *words])


def test_missing_config_file(tmp_path, capsys):
    code = run_main(["--config", str(tmp_path / "nope.toml"), "--out-dir", str(tmp_path / "o")])
    _assert_one_line(code, capsys.readouterr().err, ["nope.toml", "does not exist"])


@pytest.mark.parametrize("damage,words", [
    (None, None), ("truncate", ["truncated", "train-images"]), ("magic", ["magic", "train-images"])])
def test_data_files_rejected(damage, words, tmp_path, capsys):
    data = tmp_path / "data"
    if damage is None:
        data.mkdir()
        words = ["mnist", "--download", str(data)]
    else:
        mnist_dir(data, damage)
    out = tmp_path / "out"
    code = run_main(["--dataset", "mnist", "--data-dir", str(data), "--out-dir", str(out), "--no-progress"])
    _assert_one_line(code, capsys.readouterr().err, words)
    assert not out.exists()


def test_corrupted_cifar_batch(tmp_path, capsys, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    data = cifar_dir(tmp_path / "data")
    code = run_main(["--dataset", "cifar10", "--data-dir", str(data), "--out-dir", str(tmp_path / "o"),
                     "--model", "tinyvgg", "--activation", "relu", "--seeds", "1"])
    _assert_one_line(code, capsys.readouterr().err, ["data_batch_3"])


def test_output_folder_not_writable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = run_main(["--out-dir", str(blocker), "--epochs", "1", "--no-progress"])
    _assert_one_line(code, capsys.readouterr().err, ["not writable", str(blocker)])
    assert blocker.read_text() == "not a folder"


THEORY_CASES = {
    "unknown activation": (["--activation", "sigmod"], ["sigmod", "sigmoid"]),
    "formula with attribute access": (["--formula", "x.__class__"], ["not allowed"]),
    "formula with eval": (["--formula", 'eval("1")'], ["eval"]),
    "formula with lambda": (["--formula", "lambda: 0"], ["lambda"]),
    "formula singular": (["--formula", "1/x"], ["singular"]),
    "non-positive eps": (["--eps", "0"], ["eps"]),
    "sigma_w2 zero": (["meanfield", "--sigma-w2", "0"], ["sigma-w2"]),
    "sigma_w2 negative": (["meanfield", "--sigma-w2", "-1"], ["sigma-w2"]),
    "sigma_w2 nan": (["meanfield", "--sigma-w2", "nan"], ["sigma-w2"]),
    "sigma_b2 negative": (["meanfield", "--sigma-w2", "1", "--sigma-b2", "-0.1"], ["sigma-b2"]),
}


@pytest.mark.parametrize("case", list(THEORY_CASES), ids=list(THEORY_CASES))
def test_theory_cli_rejects(case, capsys):
    argv, words = THEORY_CASES[case]
    code = theory_main(argv)
    _assert_one_line(code, capsys.readouterr().err, words)


@pytest.mark.parametrize("argv", [
    [sys.executable, "-m", "theory", "--formula", "__import__('os').system('echo pwned')"],
    [sys.executable, "-m", "empirical.run", "--activation", "__import__('os').system('echo pwned')"],
])
def test_code_in_a_formula_is_not_executed(argv, tmp_path):
    done = subprocess.run(argv + (["--out-dir", str(tmp_path)] if "empirical.run" in argv else []),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pwned" not in done.stdout
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("formula,words", [
    ("x.__class__", ["attribute"]), ('eval("1")', ["eval"]), ("lambda: 0", ["lambda"]),
    ("x[0]", ["subscript"]), ("'x'", ["literal"]), ("f(x)", ["'f'"]), ("exp(x, 2)", ["exp takes 1"]),
    ("x" + "+x" * 400, ["characters long"]), ("(" * 60 + "x" + ")" * 60, ["too deep"]),
    ("-" * 200 + "x", ["too deep"]), ("sqrt(x)", ["not finite and real"]), ("log(x)", ["singular"]),
    ("x if x > 0 else 0", ["IfExp"]), ("x**1000", ["exponent"]), ("y + x", ["'y'"]),
])
def test_python_api_rejects_formulas(formula, words):
    with pytest.raises(registry.FormulaError) as info:
        registry.register_formula(formula)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_python_api_config_errors_name_the_value():
    with pytest.raises(C.ConfigError, match="epochs must be a positive integer, got 0"):
        C.validate(C.StudyConfig(epochs=0))
    with pytest.raises(C.ConfigError, match="did you mean 'relu'"):
        C.validate(C.StudyConfig(activations=("rleu",)))
    with pytest.raises(registry.UnknownActivation, match="did you mean 'tanh'"):
        registry.get("tnah")
    with pytest.raises(ValueError, match="no parameter"):
        registry.get("relu", slope=2.0)


def test_internal_error_prints_traceback_and_asks_for_a_bug_report(tmp_path, capsys, monkeypatch):
    """A bug is not bad input: traceback, a bug-report line, exit 1 (a stray ValueError included)."""
    from empirical import study

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(study, "run_study", broken)
    rc = run_main(["--epochs", "1", "--seeds", "1", "--activation", "relu", "--out-dir", str(tmp_path),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" in err and "an internal invariant broke" in err and "please report it" in err


def test_predict_internal_error_exit_1(tmp_path, capsys, monkeypatch):
    from empirical.analysis import claims
    from empirical.analysis.predict import main as predict_main

    study = tmp_path / "s"
    study.mkdir()
    for name, header in (("runs", "run_id,activation,seed,init,sigma_w2,sigma_b2,model,widths,depth,status\n"
                                  "a,relu,1,he,2,0,mlp,8-8,2,finished\n"),
                         ("layers", "run_id,step,layer,metric,value\n"), ("epochs", "run_id,epoch,test_acc\n"),
                         ("steps", "run_id,step,loss\n")):
        (study / f"{name}.csv").write_text(header)
    monkeypatch.setattr(claims, "predict", lambda studies: 1 / 0)
    assert predict_main([str(study)]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "please report it" in err
