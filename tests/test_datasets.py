"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100: tiny files in each real on-disk format, loaded through the modules.

Every test is offline: an autouse fixture makes any socket use fail the test, torchvision's dataset classes are
replaced where a download would be attempted, and the Debian Fashion-MNIST location is pointed at an empty folder
(except in the one ``slow`` test that reads the real installed files).
"""

from __future__ import annotations

import gzip
import pickle
import re
import socket
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets

from trainlab.data import files
from trainlab.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from trainlab.data.files import MNIST_FILES, find_files, read_cifar, read_idx, read_mnist
from trainlab.data.mnist import FashionMNISTDataModule, MNISTDataModule

from .conftest import FASHION_MNIST_DIR, require_fashion_mnist

REAL_DEBIAN_DIR = FASHION_MNIST_DIR

N_TRAIN, N_TEST = 30, 10  # tiny MNIST-like files: 3 training images per class, one test image per class


# ------------------------------------------------------------------------------------------------------------------
# fixtures: no network, no real Debian files
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any DNS lookup or socket connection fails, and fails the test afterwards (even if the code caught it)."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    assert not attempts, f"the test tried to use the network: {attempts}"


@pytest.fixture(autouse=True)
def no_debian(monkeypatch, tmp_path):
    """The Debian Fashion-MNIST location is an empty folder unless a test says otherwise."""
    empty = tmp_path / "no-debian"
    empty.mkdir()
    monkeypatch.setattr(files, "DEBIAN_FASHION_MNIST_DIRS", [empty])
    return empty


class FakeTorchvision:
    """Stands in for ``torchvision.datasets.<Class>``: records its calls, then raises or writes files."""

    def __init__(self, error: BaseException | None = None, write=None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.error, self.write = error, write

    def __call__(self, root: str, download: bool = False):
        self.calls.append((root, download))
        if self.error is not None:
            raise self.error
        if self.write is not None:
            self.write(Path(root))
        return self


@pytest.fixture
def fake_torchvision(monkeypatch):
    """``install(class_name, **FakeTorchvision kwargs)`` replaces that torchvision dataset class."""

    def install(name: str, **kwargs) -> FakeTorchvision:
        fake = FakeTorchvision(**kwargs)
        monkeypatch.setattr(torchvision.datasets, name, fake)
        return fake

    return install


# ------------------------------------------------------------------------------------------------------------------
# writers of the real formats (independent of the readers under test)
# ------------------------------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = False) -> Path:
    """IDX: 0, 0, dtype code, ndim, big-endian uint32 sizes, big-endian data."""
    big_endian = {0x08: ">u1", 0x0C: ">i4"}[code]
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += np.ascontiguousarray(array, dtype=big_endian).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training image i has pixel (0, 0) = i (its id), (0, 1) = 255 and (5, 5) = 51, label i % 10;
    test image j has pixel (0, 0) = 100 + j, label (3 j) % 10."""
    x_train = np.zeros((N_TRAIN, 28, 28), np.uint8)
    x_train[:, 0, 0] = np.arange(N_TRAIN)
    x_train[:, 0, 1] = 255
    x_train[:, 5, 5] = 51
    y_train = np.arange(N_TRAIN) % 10
    x_test = np.zeros((N_TEST, 28, 28), np.uint8)
    x_test[:, 0, 0] = 100 + np.arange(N_TEST)
    y_test = (3 * np.arange(N_TEST)) % 10
    return x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8)


def write_mnist(directory: Path, gz: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(MNIST_FILES, mnist_arrays(), strict=True):
        write_idx(directory / name, array, gz=gz)
    return directory


def cifar_rows(ids: np.ndarray) -> np.ndarray:
    """CIFAR rows [N, 3072]: red (0, 0) = id, green (2, 3) = 51, blue (31, 31) = 255."""
    rows = np.zeros((len(ids), 3072), np.uint8)
    rows[:, 0] = ids
    rows[:, 1024 + 2 * 32 + 3] = 51
    rows[:, 2048 + 31 * 32 + 31] = 255
    return rows


def write_pickle(path: Path, batch: dict) -> None:
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar10(directory: Path) -> Path:
    """5 data batches of 6 images (ids 0..29, label id % 10) and a test batch of 10 (ids 100..109)."""
    directory.mkdir(parents=True, exist_ok=True)
    for b in range(5):
        ids = np.arange(6 * b, 6 * b + 6)
        batch = {b"batch_label": b"training batch", b"labels": [int(i % 10) for i in ids], b"data": cifar_rows(ids)}
        write_pickle(directory / f"data_batch_{b + 1}", batch)
    ids = 100 + np.arange(10)
    write_pickle(directory / "test_batch", {b"labels": [int(3 * i % 10) for i in range(10)], b"data": cifar_rows(ids)})
    return directory


def write_cifar100(directory: Path) -> Path:
    """train: 200 images (ids 0..199, fine label id % 100, coarse label id % 20); test: 100 (ids 200..255, 0..43)."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = np.arange(200)
    train = {b"fine_labels": [int(i % 100) for i in ids], b"coarse_labels": [int(i % 20) for i in ids]}
    write_pickle(directory / "train", {**train, b"data": cifar_rows(ids)})
    test_ids = (200 + np.arange(100)) % 256
    test = {b"fine_labels": [int(7 * i % 100) for i in range(100)], b"coarse_labels": [0] * 100}
    write_pickle(directory / "test", {**test, b"data": cifar_rows(test_ids)})
    return directory


def ids_of(x: torch.Tensor) -> np.ndarray:
    """The id stored in pixel (channel 0, 0, 0) of each image."""
    return np.rint(x[:, 0, 0, 0].numpy() * 255).astype(int)


# ------------------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST through the data modules
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module_class", [FashionMNISTDataModule, MNISTDataModule])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("layout", ["{name}/raw", "{name}", "."])
def test_mnist_like_files_load_through_the_module(tmp_path, module_class, gz, layout):
    data_dir = tmp_path / "data"
    write_mnist(data_dir / layout.format(name=module_class.dataset), gz=gz)
    dm = module_class(batch_size=8, data_dir=data_dir, download=False, val_size=10, split_seed=0)
    dm.setup()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = dm.splits["train"], dm.splits["val"], dm.splits["test"]

    assert x_tr.shape == (20, 1, 28, 28) and x_va.shape == (10, 1, 28, 28) and x_te.shape == (10, 1, 28, 28)
    assert x_tr.dtype == x_va.dtype == x_te.dtype == torch.float32
    assert y_tr.dtype == y_va.dtype == y_te.dtype == torch.int64
    # scaling: 255 -> exactly 1.0, 51 -> 0.2, 0 -> 0
    assert (x_tr[:, 0, 0, 1] == 1.0).all() and (x_va[:, 0, 0, 1] == 1.0).all()
    assert torch.allclose(x_tr[:, 0, 5, 5], torch.full((20,), 0.2), atol=1e-7)
    assert x_tr[:, 0, 10, 10].abs().sum() == 0 and float(x_tr.max()) == 1.0 and float(x_tr.min()) == 0.0
    # labels follow their images, validation is one image per class, disjoint from training, together all 30
    tr, va = ids_of(x_tr), ids_of(x_va)
    assert (y_tr.numpy() == tr % 10).all() and (y_va.numpy() == va % 10).all()
    assert np.bincount(y_va.numpy(), minlength=10).tolist() == [1] * 10
    assert np.bincount(y_tr.numpy(), minlength=10).tolist() == [2] * 10
    assert not set(tr) & set(va) and sorted([*tr, *va]) == list(range(N_TRAIN))
    # the test split is exactly the test file, in order
    _, _, x_test, y_test = mnist_arrays()
    assert torch.equal(x_te, torch.from_numpy(x_test[:, None].astype(np.float32) / 255))
    assert ids_of(x_te).tolist() == list(range(100, 110)) and y_te.tolist() == y_test.tolist()
    # and the loaders serve it
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and y.shape == (8,)


def test_split_is_fixed_by_split_seed(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")

    def val_ids(seed: int) -> list[int]:
        dm = MNISTDataModule(batch_size=4, data_dir=tmp_path, download=False, val_size=10, split_seed=seed)
        return ids_of(dm.load_splits()["val"][0]).tolist()

    assert val_ids(0) == val_ids(0)
    assert val_ids(0) != val_ids(1)
    assert len(val_ids(1)) == 10


def test_val_size_is_validated(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")
    for bad in (0, -3, 2.5, True):
        message = f"val_size={bad!r}: training images held out for validation must be an integer >= 1"
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            MNISTDataModule(batch_size=4, data_dir=tmp_path, download=False, val_size=bad)
    for bad in (N_TRAIN, N_TRAIN + 1, 5):  # all training images, more, fewer than the 10 classes
        dm = MNISTDataModule(batch_size=4, data_dir=tmp_path, download=False, val_size=bad)
        with pytest.raises(ValueError, match=f"data.val_size={bad}"):
            dm.load_splits()


# ------------------------------------------------------------------------------------------------------------------
# the IDX reader
# ------------------------------------------------------------------------------------------------------------------


def test_read_idx_reads_the_header_shape_and_big_endian_values(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", x)), x)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", x, gz=True)), x)
    ints = np.array([1, 256, -2, 70000], np.int32)
    out = read_idx(write_idx(tmp_path / "c", ints, code=0x0C))
    assert out.tolist() == [1, 256, -2, 70000] and out.dtype == np.int32


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_rejects_truncated_files_naming_them(tmp_path, gz):
    x = np.ones((5, 28, 28), np.uint8)
    path = write_idx(tmp_path / "images", x)
    raw = path.read_bytes()
    for cut, what in ((len(raw) - 100, "truncated"), (10, "truncated"), (2, "truncated")):
        bad = tmp_path / f"cut{cut}"
        bad.write_bytes(raw[:cut])
        if gz:
            bad = bad.with_name(bad.name + ".gz")
            bad.write_bytes(gzip.compress(raw[:cut]))
        with pytest.raises(ValueError, match=what) as err:
            read_idx(bad)
        assert str(bad) in str(err.value)


def test_read_idx_rejects_a_wrong_magic_a_cut_gzip_and_trailing_bytes(tmp_path):
    raw = write_idx(tmp_path / "images", np.ones((2, 3), np.uint8)).read_bytes()
    wrong = tmp_path / "wrong-magic"
    wrong.write_bytes(b"\x1f\x8b" + raw[2:])  # e.g. a gzip file without the .gz name
    with pytest.raises(ValueError, match="magic") as err:
        read_idx(wrong)
    assert str(wrong) in str(err.value)
    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(ValueError) as err:
        read_idx(cut_gz)
    assert str(cut_gz) in str(err.value)
    longer = tmp_path / "longer"
    longer.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="1 bytes after the data") as err:
        read_idx(longer)
    assert str(longer) in str(err.value)


def test_find_files_takes_the_first_directory_with_all_files_gzipped_or_not(tmp_path):
    partial, plain, gz = tmp_path / "partial", tmp_path / "plain", tmp_path / "gz"
    write_mnist(plain)
    write_mnist(gz, gz=True)
    write_mnist(partial)
    (partial / MNIST_FILES[3]).unlink()
    assert find_files(MNIST_FILES, [tmp_path / "nowhere", partial, gz, plain]) == gz
    assert find_files(MNIST_FILES, [partial, plain, gz]) == plain
    assert find_files(MNIST_FILES, [partial, tmp_path]) is None
    x_train, y_train, x_test, y_test = read_mnist(gz)
    assert x_train.shape == (30, 1, 28, 28) and x_test.shape == (10, 1, 28, 28)
    assert y_train.dtype == np.int64 and y_test.tolist() == mnist_arrays()[3].tolist()


# ------------------------------------------------------------------------------------------------------------------
# CIFAR through the data modules
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_subfolder", [True, False], ids=["cifar-10-batches-py", "data_dir"])
def test_cifar10_batches_load_through_the_module(tmp_path, in_subfolder):
    write_cifar10(tmp_path / "cifar-10-batches-py" if in_subfolder else tmp_path)
    dm = CIFAR10DataModule(batch_size=4, data_dir=tmp_path, download=False, val_size=10, split_seed=0)
    dm.setup()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert x_tr.shape == (20, 3, 32, 32) and x_va.shape == (10, 3, 32, 32) and x_te.shape == (10, 3, 32, 32)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    # the 3072 values of a row are 1024 red, 1024 green, 1024 blue, each a row-major 32x32 image
    for x in (x_tr, x_va, x_te):
        assert torch.allclose(x[:, 1, 2, 3], torch.full((len(x),), 0.2), atol=1e-7)
        assert (x[:, 2, 31, 31] == 1.0).all()
        assert float(x.sum()) == pytest.approx(float(x[:, 0, 0, 0].sum()) + len(x) * 1.2, rel=1e-5)
    tr, va = ids_of(x_tr), ids_of(x_va)
    assert not set(tr) & set(va) and sorted([*tr, *va]) == list(range(30))
    assert (y_tr.numpy() == tr % 10).all() and np.bincount(y_va.numpy(), minlength=10).tolist() == [1] * 10
    assert ids_of(x_te).tolist() == list(range(100, 110))
    assert y_te.tolist() == [3 * i % 10 for i in range(10)]


def test_cifar100_uses_the_fine_labels(tmp_path):
    write_cifar100(tmp_path / "cifar-100-python")
    dm = CIFAR100DataModule(batch_size=4, data_dir=tmp_path, download=False, val_size=100, split_seed=3)
    splits = dm.load_splits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits["train"], splits["val"], splits["test"]
    assert x_tr.shape == (100, 3, 32, 32) and x_va.shape == (100, 3, 32, 32) and x_te.shape == (100, 3, 32, 32)
    tr, va = ids_of(x_tr), ids_of(x_va)
    assert not set(tr) & set(va) and sorted([*tr, *va]) == list(range(200))
    assert (y_tr.numpy() == tr % 100).all() and (y_va.numpy() == va % 100).all()
    assert np.bincount(y_va.numpy(), minlength=100).tolist() == [1] * 100  # stratified over the 100 fine classes
    assert ids_of(x_te).tolist() == ((200 + np.arange(100)) % 256).tolist()
    assert y_te.tolist() == [7 * i % 100 for i in range(100)] and len(set(y_te.tolist())) == 100
    assert (x_te[:, 2, 31, 31] == 1.0).all()


def test_read_cifar_rejects_a_batch_without_the_expected_keys(tmp_path):
    write_cifar100(tmp_path)
    write_pickle(tmp_path / "train", {b"labels": [0], b"data": cifar_rows(np.arange(1))})  # CIFAR-10 keys
    with pytest.raises(ValueError, match="fine_labels") as err:
        read_cifar(tmp_path, 100)
    assert str(tmp_path / "train") in str(err.value)
    write_pickle(tmp_path / "train", {b"fine_labels": [0, 1], b"data": cifar_rows(np.arange(1))})
    with pytest.raises(ValueError, match="1 images") as err:
        read_cifar(tmp_path, 100)
    assert str(tmp_path / "train") in str(err.value)


# ------------------------------------------------------------------------------------------------------------------
# missing files: the message, the download attempt, the Debian location
# ------------------------------------------------------------------------------------------------------------------


def test_missing_fashion_mnist_without_download_says_where_it_looked_and_how_to_get_it(
    tmp_path, no_debian, fake_torchvision
):
    fake = fake_torchvision("FashionMNIST", error=AssertionError("must not be called"))
    data_dir = tmp_path / "data"
    dm = FashionMNISTDataModule(batch_size=4, data_dir=data_dir, download=False)
    with pytest.raises(FileNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    lines = message.splitlines()
    for searched in (data_dir / "FashionMNIST" / "raw", data_dir / "FashionMNIST", data_dir, no_debian):
        assert f"  {searched}" in lines
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "/usr/share/datasets/fashion-mnist" in message
    assert f"{data_dir}/FashionMNIST/raw" in message
    assert "data.download=false" in message
    assert fake.calls == []


@pytest.mark.parametrize(
    ("module_class", "tv_name", "expected_dirs", "hint"),
    [
        (MNISTDataModule, "MNIST", ["MNIST/raw", "MNIST", "."], "/MNIST/raw"),
        (CIFAR10DataModule, "CIFAR10", ["cifar-10-batches-py", "."], "cifar-10-batches-py lies in"),
        (CIFAR100DataModule, "CIFAR100", ["cifar-100-python", "."], "cifar-100-python lies in"),
    ],
)
def test_a_failed_download_gives_the_reason_and_the_searched_directories(
    tmp_path, fake_torchvision, module_class, tv_name, expected_dirs, hint
):
    fake = fake_torchvision(tv_name, error=URLError("no route to host (offline test)"))
    dm = module_class(batch_size=4, data_dir=tmp_path, download=True)
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert fake.calls == [(str(tmp_path), True)]
    reason = [line for line in message.splitlines() if line.startswith("Downloading")]
    assert len(reason) == 1
    assert f"torchvision.datasets.{tv_name}" in reason[0]
    assert "URLError: <urlopen error no route to host (offline test)>" in reason[0]
    searched = [line.strip() for line in message.splitlines() if line.startswith("  ")]
    assert searched == [str((tmp_path / d).resolve()) for d in expected_dirs]
    assert hint in message and "apt-get" not in message
    assert isinstance(err.value.__cause__, URLError)


def test_torchvision_runtime_errors_become_one_line(tmp_path, fake_torchvision):
    fake_torchvision("FashionMNIST", error=RuntimeError("Error downloading x.gz:\nTried mirror, got:\nHTTP 404\n"))
    with pytest.raises(FileNotFoundError) as err:
        FashionMNISTDataModule(batch_size=4, data_dir=tmp_path).load_splits()
    assert "RuntimeError: Error downloading x.gz: Tried mirror, got: HTTP 404" in str(err.value)
    assert "sudo apt-get install dataset-fashion-mnist" in str(err.value)


def test_a_successful_download_is_then_loaded(tmp_path, fake_torchvision):
    fake = fake_torchvision("FashionMNIST", write=lambda root: write_mnist(root / "FashionMNIST" / "raw", gz=True))
    dm = FashionMNISTDataModule(batch_size=4, data_dir=tmp_path / "data", download=True, val_size=10)
    dm.prepare_data()
    splits = dm.load_splits()
    assert fake.calls == [(str(tmp_path / "data"), True)]  # once: the second lookup finds the files
    assert [len(splits[k][1]) for k in ("train", "val", "test")] == [20, 10, 10]


def test_the_debian_location_is_searched(tmp_path, monkeypatch, fake_torchvision):
    debian = write_mnist(tmp_path / "usr-share-datasets-fashion-mnist", gz=True)
    monkeypatch.setattr(files, "DEBIAN_FASHION_MNIST_DIRS", [tmp_path / "elsewhere", debian])
    fake = fake_torchvision("FashionMNIST", error=AssertionError("must not be called"))
    empty = tmp_path / "empty"
    empty.mkdir()
    dm = FashionMNISTDataModule(batch_size=4, data_dir=empty, download=True, val_size=10)
    assert dm.locate() == debian
    splits = dm.load_splits()
    assert [tuple(splits[k][0].shape) for k in ("train", "val", "test")] == [(20, 1, 28, 28), (10, 1, 28, 28)] + [
        (10, 1, 28, 28)
    ]
    assert ids_of(splits["test"][0]).tolist() == list(range(100, 110))
    assert fake.calls == []
    # MNIST never looks there
    with pytest.raises(FileNotFoundError, match="data.download=false"):
        MNISTDataModule(batch_size=4, data_dir=empty, download=False).load_splits()


# ------------------------------------------------------------------------------------------------------------------
# the real Fashion-MNIST (Debian package dataset-fashion-mnist)
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    require_fashion_mnist()
    monkeypatch.setattr(files, "DEBIAN_FASHION_MNIST_DIRS", [REAL_DEBIAN_DIR])
    dm = FashionMNISTDataModule(batch_size=128, data_dir=tmp_path, download=False)  # data_dir is empty
    assert dm.locate() == REAL_DEBIAN_DIR

    x_train, y_train, x_test, y_test = read_mnist(REAL_DEBIAN_DIR)
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10

    splits = dm.load_splits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits["train"], splits["val"], splits["test"]
    assert len(x_tr) == 55000 and len(x_va) == 5000 and len(x_te) == 10000
    assert np.bincount(y_va.numpy()).tolist() == [500] * 10  # stratified
    assert np.bincount(y_tr.numpy()).tolist() == [5500] * 10
    assert torch.equal(y_te, torch.from_numpy(y_test)) and torch.equal(x_te, torch.from_numpy(x_test / np.float32(255)))
    assert float(x_tr.min()) == 0.0 and float(x_tr.max()) == 1.0

    # the known statistics of the 60,000 training images (train + val)
    total = sum(float(x.sum(dtype=torch.float64)) for x in (x_tr, x_va))
    squares = sum(float((x * x).sum(dtype=torch.float64)) for x in (x_tr, x_va))
    count = 60000 * 28 * 28
    mean = total / count
    std = (squares / count - mean**2) ** 0.5
    assert round(mean, 3) == 0.286
    assert round(std, 3) == 0.353


def test_synthetic_data_has_the_asked_shape_and_is_learnable_but_not_trivial():
    from trainlab.data.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(input_shape=(3, 8, 8), num_classes=4, train_size=400, val_size=50, test_size=60)
    splits = dm.load_splits()
    assert {k: tuple(v[0].shape) for k, v in splits.items()} == {
        "train": (400, 3, 8, 8),
        "val": (50, 3, 8, 8),
        "test": (60, 3, 8, 8),
    }
    x, y = splits["train"]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and set(y.tolist()) == {0, 1, 2, 3}
    # the same seed gives the same data; the nearest class mean classifies the test split well above chance
    assert torch.equal(
        SyntheticDataModule(
            input_shape=(3, 8, 8), num_classes=4, train_size=400, val_size=50, test_size=60
        ).load_splits()["test"][0],
        splits["test"][0],
    )
    means = torch.stack([x[y == c].mean(0).flatten() for c in range(4)])
    xt, yt = splits["test"]
    acc = (torch.cdist(xt.flatten(1), means).argmin(1) == yt).float().mean().item()
    assert 0.6 < acc <= 1.0


def test_synthetic_data_rejects_a_bad_shape():
    from trainlab.data.synthetic import SyntheticDataModule

    with pytest.raises(ValueError, match=r"data.input_shape=\[28, 28\]: give \[channels, height, width\]"):
        SyntheticDataModule(input_shape=(28, 28))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_classes": 1}, "num_classes=1: classes of the synthetic data must be an integer >= 2"),
        ({"val_size": 0}, "val_size=0: samples of the validation split must be an integer >= 1"),
        (
            {"noise": -0.1},
            "noise=-0.1: standard deviation of the noise added to the class templates must be a number >= 0",
        ),
        ({"batch_size": 0}, "batch_size=0: samples per batch must be an integer >= 1"),  # the base class's setting
        ({"loader": "gpu"}, "loader='gpu': how batches are made must be one of memory, dataloader"),
    ],
)
def test_synthetic_data_rejects_settings_out_of_range(settings: dict, message: str):
    from trainlab.data.synthetic import SyntheticDataModule

    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        SyntheticDataModule(**settings)
