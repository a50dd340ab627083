"""empirical.data: tiny files in the real on-disk formats (IDX, CIFAR-10 pickles), written on the fly."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
import sys

import numpy as np
import pytest
import torch

from empirical.data import (
    CACHE_DIRNAME, DATASETS, DataError, DataSpec, load, sample_images, stratified_split, stratified_subset,
)

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------- fixtures

def write_idx(path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.tobytes())


def make_idx_set(root, folder: str, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    rs = np.random.RandomState(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rs.randint(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rs.randint(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, a in arrays.items():
        write_idx(raw / name, a)
    return arrays


def make_cifar(root, n_per_batch: int = 10, seed: int = 0) -> dict:
    rs = np.random.RandomState(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rs.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        labels = [int(v) for v in rs.permutation(n_per_batch) % 10]
        batches[name] = {"data": data, "labels": labels, "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}, protocol=2))
    return batches


@pytest.fixture
def no_md5(monkeypatch):
    """As torchvision's own tests do: fabricated CIFAR files cannot match the official md5s."""
    import torchvision.datasets.cifar as tvc

    monkeypatch.setattr(tvc, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture(scope="module")
def digits():
    return load(DataSpec())


def class_counts(y: torch.Tensor, k: int = 10) -> list[int]:
    return torch.bincount(y, minlength=k).tolist()


# --------------------------------------------------------------------------- spec validation

def test_datasets_tuple():
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10", "mnist1d")


def test_unknown_name_suggests_close_match_and_lists_all():
    with pytest.raises(DataError) as err:
        DataSpec("mnsit")
    msg = str(err.value)
    assert "did you mean 'mnist'" in msg and "fashion-mnist" in msg and "cifar10" in msg
    assert "\n" not in msg


def test_name_aliases_and_expanduser():
    spec = DataSpec("Fashion_MNIST", data_dir="~/somewhere")
    assert spec.name == "fashion-mnist"
    assert spec.data_dir == os.path.join(os.path.expanduser("~"), "somewhere")


@pytest.mark.parametrize("kwargs", [
    {"train_size": 0}, {"train_size": -3}, {"train_size": True}, {"train_size": 2.5},
    {"test_fraction": 0.0}, {"test_fraction": 1.0}, {"seed": -1}, {"seed": 2**32},
])
def test_bad_spec_values(kwargs):
    with pytest.raises(DataError):
        DataSpec(**kwargs)


# --------------------------------------------------------------------------- digits

def test_digits_shapes_dtypes_and_fixed_split(digits):
    assert digits.x_train.shape == (1348, 1, 8, 8) and digits.x_test.shape == (449, 1, 8, 8)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.num_classes == 10 and digits.classes == tuple("0123456789")
    assert digits.input_shape == (1, 8, 8) and digits.image_shape == (1, 8, 8)
    assert torch.equal(digits.train_indices, torch.arange(1348))


def test_digits_normalised_on_train_split(digits):
    assert abs(float(digits.x_train.mean())) < 1e-5
    assert abs(float(digits.x_train.std(unbiased=False)) - 1.0) < 1e-5
    # the recorded statistics reproduce the raw pixels (integers 0..16, scaled by 1/16)
    pixels = digits.x_train * digits.std[0] + digits.mean[0]
    assert torch.allclose(pixels * 16, torch.round(pixels * 16), atol=1e-4)
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6


def test_digits_unnormalised_and_flatten():
    ds = load(DataSpec(normalize=False, flatten=True))
    assert ds.x_train.shape == (1348, 64) and ds.input_shape == (64,) and ds.image_shape == (1, 8, 8)
    assert ds.mean == (0.0,) and ds.std == (1.0,)
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0


def test_digits_split_is_stratified_and_independent_of_run_seed(digits):
    from sklearn.datasets import load_digits

    y = load_digits().target
    per_class = np.bincount(y)
    test_counts = np.array(class_counts(digits.y_test))
    assert np.all(np.abs(test_counts - per_class * 0.25) < 1)
    other = load(DataSpec(seed=7))
    assert torch.equal(other.x_test, digits.x_test) and torch.equal(other.y_train, digits.y_train)


def test_split_is_pinned():
    """The same split on every machine: a change of this fingerprint changes every published number."""
    from sklearn.datasets import load_digits

    train, test = stratified_split(load_digits().target, 0.25)
    assert len(train) == 1348 and len(test) == 449
    assert not set(train) & set(test)
    digest = hashlib.sha256(np.asarray(test, dtype=np.int64).tobytes()).hexdigest()[:16]
    assert digest == PINNED_DIGITS_TEST_DIGEST


PINNED_DIGITS_TEST_DIGEST = "6ed4e8c1972594ac"  # numpy RandomState(0), legacy-stable stream


# --------------------------------------------------------------------------- subsets

def test_subset_is_stratified_and_deterministic():
    a = load(DataSpec(train_size=25, seed=1))
    counts = class_counts(a.y_train)
    assert sum(counts) == 25 and max(counts) - min(counts) <= 1
    b = load(DataSpec(train_size=25, seed=1))
    c = load(DataSpec(train_size=25, seed=2))
    assert torch.equal(a.train_indices, b.train_indices) and torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.train_indices, c.train_indices)
    full = load(DataSpec())
    assert torch.equal(full.x_train[a.train_indices], a.x_train)  # same normalisation as the full split
    assert a.mean == full.mean and a.std == full.std


def test_subsets_of_one_seed_are_nested():
    y = np.repeat(np.arange(10), 50)
    small, large = stratified_subset(y, 13, seed=4), stratified_subset(y, 40, seed=4)
    assert set(small) <= set(large)
    assert np.bincount(y[large]).tolist() == [4] * 10


def test_subset_when_a_class_runs_out():
    y = np.array([0] * 2 + [1] * 10 + [2] * 10)
    idx = stratified_subset(y, 14, seed=0)
    assert np.bincount(y[idx]).tolist() == [2, 6, 6]


@pytest.mark.parametrize("n", [5, 9, 1349, 5000])
def test_train_size_out_of_range(n):
    with pytest.raises(DataError) as err:
        load(DataSpec(train_size=n))
    assert "10..1348" in str(err.value)


def test_sample_images(digits):
    x, y = sample_images(digits, n_per_class=2)
    assert x.shape == (20, 1, 8, 8)
    assert y.tolist() == [c for c in range(10) for _ in range(2)]
    assert float(x.min()) >= -1e-6 and float(x.max()) <= 1 + 1e-6
    with pytest.raises(DataError):
        sample_images(digits, 0)


# --------------------------------------------------------------------------- MNIST-format files

@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_files_load(tmp_path, name, folder):
    arrays = make_idx_set(tmp_path, folder)
    ds = load(DataSpec(name, data_dir=str(tmp_path)))
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_test.dtype == torch.int64
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    pixels = ds.x_test[:, 0] * ds.std[0] + ds.mean[0]
    assert torch.allclose(pixels, torch.tensor(arrays["t10k-images-idx3-ubyte"] / 255.0, dtype=torch.float32), atol=1e-5)
    train_pixels = arrays["train-images-idx3-ubyte"] / 255.0
    assert ds.mean[0] == pytest.approx(train_pixels.mean()) and ds.std[0] == pytest.approx(train_pixels.std())
    assert len(ds.classes) == 10
    assert ds.classes[0] == ("T-shirt/top" if name == "fashion-mnist" else "0 - zero")


def test_idx_subset_one_per_class(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    ds = load(DataSpec("mnist", data_dir=str(tmp_path), train_size=10, seed=3))
    assert class_counts(ds.y_train) == [1] * 10
    with pytest.raises(DataError, match="10..20"):
        load(DataSpec("mnist", data_dir=str(tmp_path), train_size=21))


def test_cache_round_trip(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    first = load(DataSpec("mnist", data_dir=str(tmp_path)))
    cache = tmp_path / CACHE_DIRNAME
    assert sorted(p.name for p in cache.iterdir()) == ["mnist-test.pt", "mnist-train.pt"]
    payload = torch.load(cache / "mnist-train.pt", weights_only=True)
    assert payload["x"].dtype == torch.uint8 and payload["x"].shape == (20, 1, 28, 28)
    shutil.rmtree(tmp_path / "MNIST")  # only the cache is left
    second = load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert first.classes == second.classes


def test_bad_cache_is_rebuilt(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    first = load(DataSpec("mnist", data_dir=str(tmp_path)))
    bad = tmp_path / CACHE_DIRNAME / "mnist-train.pt"
    bad.write_bytes(b"not a torch file")
    second = load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert torch.equal(first.x_train, second.x_train)
    assert torch.load(bad, weights_only=True)["x"].shape == (20, 1, 28, 28)
    # a well-formed, up-to-date file with the wrong shapes is rejected too
    payload = torch.load(bad, weights_only=True)
    payload["x"], payload["y"] = torch.zeros(3, 1, 5, 5, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64)
    torch.save(payload, bad)
    assert torch.equal(load(DataSpec("mnist", data_dir=str(tmp_path))).x_train, first.x_train)
    assert torch.load(bad, weights_only=True)["x"].shape == (20, 1, 28, 28)


@pytest.mark.parametrize("where", ["x", "y"])
def test_one_flipped_bit_in_the_cache_payload_is_caught_on_read(tmp_path, where):
    arrays = make_idx_set(tmp_path, "MNIST")
    first = load(DataSpec("mnist", data_dir=str(tmp_path)))
    cache = tmp_path / CACHE_DIRNAME / "mnist-train.pt"
    blob = bytearray(cache.read_bytes())
    payload = (np.ascontiguousarray(arrays["train-images-idx3-ubyte"], dtype=np.uint8).tobytes() if where == "x"
               else np.asarray(arrays["train-labels-idx1-ubyte"], dtype=np.int64).tobytes())
    at = bytes(blob).find(payload)
    assert at > 0, "payload not stored uncompressed"
    blob[at + len(payload) // 2] ^= 0x04
    cache.write_bytes(bytes(blob))
    damaged = torch.load(cache, weights_only=True)[where]
    original = (torch.from_numpy(np.ascontiguousarray(arrays["train-images-idx3-ubyte"], dtype=np.uint8)).unsqueeze(1)
                if where == "x" else torch.from_numpy(np.asarray(arrays["train-labels-idx1-ubyte"], dtype=np.int64)))
    assert not torch.equal(damaged, original), "the flip did not change the stored tensor"
    second = load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_train, second.y_train)
    assert bytes(blob) != cache.read_bytes(), "the damaged cache was not rebuilt"


def test_stale_cache_is_rebuilt_when_raw_files_change(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    load(DataSpec("mnist", data_dir=str(tmp_path)))
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    write_idx(labels, (np.arange(20) + 1) % 10)
    os.utime(labels, ns=(1_000_000_000, 1_000_000_000))
    ds = load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert ds.y_train.tolist() == ((np.arange(20) + 1) % 10).tolist()


def test_unwritable_cache_is_skipped(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    (tmp_path / CACHE_DIRNAME).write_text("a file where the cache folder would go")
    ds = load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert ds.x_train.shape == (20, 1, 28, 28)


def test_missing_folder_is_one_line_with_path_and_download_hint(tmp_path):
    with pytest.raises(DataError) as err:
        load(DataSpec("mnist", data_dir=str(tmp_path)))
    msg = str(err.value)
    assert "\n" not in msg and "--download" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg


def test_partly_missing_names_missing_file(tmp_path):
    make_idx_set(tmp_path, "FashionMNIST")
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load(DataSpec("fashion-mnist", data_dir=str(tmp_path)))


def test_truncated_idx(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as err:
        load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert str(path) in str(err.value) and "truncated" in str(err.value)


def test_idx_with_trailing_bytes(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00" * 7)
    with pytest.raises(DataError) as err:
        load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert str(path) in str(err.value) and "7 bytes more" in str(err.value)


def test_wrong_magic_idx(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 3  # claims 3 dimensions
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load(DataSpec("mnist", data_dir=str(tmp_path)))
    assert str(path) in str(err.value) and "magic" in str(err.value)


def test_label_count_mismatch_and_label_range(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(19) % 10)
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        load(DataSpec("mnist", data_dir=str(tmp_path)))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(20))
    with pytest.raises(DataError, match="label 19"):
        load(DataSpec("mnist", data_dir=str(tmp_path)))


# --------------------------------------------------------------------------- CIFAR-10 pickles

def test_cifar_loads(tmp_path, no_md5):
    batches = make_cifar(tmp_path)
    ds = load(DataSpec("cifar10", data_dir=str(tmp_path)))
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and len(ds.mean) == 3
    assert ds.y_test.tolist() == batches["test_batch"]["labels"]
    assert ds.y_train[:10].tolist() == batches["data_batch_1"]["labels"]
    # rows are R, G, B planes of 32x32: channel c of the tensor is plane c
    std = torch.tensor(ds.std).view(3, 1, 1)
    mean = torch.tensor(ds.mean).view(3, 1, 1)
    pixels = ds.x_test[0] * std + mean
    expected = torch.tensor(batches["test_batch"]["data"][0].reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    assert torch.allclose(pixels, expected, atol=1e-5)
    train = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 1024) / 255.0
    assert ds.mean == pytest.approx(tuple(train.mean(axis=(0, 2))))
    assert ds.std == pytest.approx(tuple(train.std(axis=(0, 2))))


def test_cifar_cache_round_trip(tmp_path, no_md5):
    make_cifar(tmp_path)
    first = load(DataSpec("cifar10", data_dir=str(tmp_path), flatten=True))
    shutil.rmtree(tmp_path / "cifar-10-batches-py")
    second = load(DataSpec("cifar10", data_dir=str(tmp_path), flatten=True))
    assert second.x_train.shape == (50, 3072) and torch.equal(first.x_train, second.x_train)


def test_cifar_md5_mismatch(tmp_path):
    make_cifar(tmp_path)
    with pytest.raises(DataError, match=r"md5 mismatch") as err:
        load(DataSpec("cifar10", data_dir=str(tmp_path)))
    assert "data_batch_1" in str(err.value) and "\n" not in str(err.value)


def test_cifar_corrupted_pickle(tmp_path, no_md5):
    make_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError) as err:
        load(DataSpec("cifar10", data_dir=str(tmp_path)))
    assert str(path) in str(err.value) and "pickle" in str(err.value)


def test_cifar_wrong_shapes(tmp_path, no_md5):
    make_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((10, 3000), np.uint8), "labels": list(range(10))}))
    with pytest.raises(DataError) as err:
        load(DataSpec("cifar10", data_dir=str(tmp_path)))
    assert str(path) in str(err.value) and "3072" in str(err.value)


def test_cifar_missing(tmp_path):
    with pytest.raises(DataError) as err:
        load(DataSpec("cifar10", data_dir=str(tmp_path)))
    assert "cifar-10-batches-py" in str(err.value) and "--download" in str(err.value)


# --------------------------------------------------------------------------- optional mnist1d

def test_mnist1d_without_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(DataError, match="pip install mnist1d"):
        load(DataSpec("mnist1d", data_dir=str(tmp_path)))


def test_mnist1d_when_installed(tmp_path):
    pytest.importorskip("mnist1d.data")
    state = np.random.get_state()
    ds = load(DataSpec("mnist1d", data_dir=str(tmp_path), train_size=30, seed=1))
    assert ds.x_train.shape == (30, 1, 1, 40) and ds.x_test.shape == (1000, 1, 1, 40)
    assert class_counts(ds.y_train) == [3] * 10
    assert np.array_equal(np.random.get_state()[1], state[1])  # the caller's global stream is untouched
