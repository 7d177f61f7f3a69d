"""Readers for the on-disk formats of MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, and the shared data module.

We read the files ourselves instead of through torchvision's dataset classes, because those insist on md5-checked
files in one fixed folder layout, while the files may come from elsewhere (the Debian package
``dataset-fashion-mnist``, a copy on a shared disk, gzipped or not). torchvision is used only to *download*
(:func:`download_with_torchvision`): it knows the URLs and checksums.

Formats read here:

* **IDX** (MNIST, Fashion-MNIST; :func:`read_idx`): 2 zero bytes, a dtype code byte, a byte with the number of
  dimensions, one big-endian uint32 per dimension, then the values in C order (big-endian). Every dtype code of the
  format is accepted (MNIST uses only 0x08 = uint8). Deviation: ``name.gz`` is read as transparently as ``name``.
* **CIFAR "python version"** (:func:`read_cifar`): pickled dicts; ``cifar-10-batches-py/data_batch_1..5`` and
  ``test_batch`` with ``b"data"`` (uint8 ``[N, 3072]``: 1024 red, 1024 green, 1024 blue values of a row-major
  32x32 image) and ``b"labels"``; ``cifar-100-python/train`` and ``test`` with ``b"data"`` and ``b"fine_labels"``
  (the 100 classes; the 20 ``coarse_labels`` are not used). Deviation: a gzipped copy (``name.gz``) is read too.

Where files are looked for (first directory holding *all* files of a data set wins, see :func:`search_dirs`):

* MNIST / Fashion-MNIST: ``<data_dir>/<Name>/raw`` (torchvision's layout, ``Name`` = ``MNIST`` or
  ``FashionMNIST``), ``<data_dir>/<Name>``, ``<data_dir>``, and for Fashion-MNIST also
  :data:`DEBIAN_FASHION_MNIST_DIRS` (``/usr/share/datasets/fashion-mnist``, from ``apt-get install
  dataset-fashion-mnist``). MNIST and Fashion-MNIST use the same file names, so loose files directly in
  ``<data_dir>`` are taken for whichever of the two is asked for.
* CIFAR: ``<data_dir>/cifar-10-batches-py`` / ``<data_dir>/cifar-100-python`` (the extracted archive, also
  torchvision's layout), then ``<data_dir>`` itself.
"""

from __future__ import annotations

import gzip
import os
import pickle
import socket
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch

from trainlab.data.datamodule import (
    BatchSize,
    EvalBatchSize,
    InMemoryDataModule,
    Loader,
    NumClasses,
    NumWorkers,
    SplitSeed,
)
from trainlab.errors import DataFileError  # noqa: F401 - raised here; importable from here as before
from trainlab.settings import Setting, checked

#: where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the four gzipped IDX files
#: (a module-level list so that tests and unusual installs can change it)
DEBIAN_FASHION_MNIST_DIRS: list[Path] = [Path("/usr/share/datasets/fashion-mnist")]

#: the four IDX files of MNIST and Fashion-MNIST (same names for both), each possibly with ``.gz``
MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES: tuple[str, ...] = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CIFAR100_FILES: tuple[str, ...] = ("train", "test")

#: seconds a stalled download socket may wait before the attempt fails (instead of hanging forever)
DOWNLOAD_SOCKET_TIMEOUT_S = 60.0

# IDX dtype codes -> big-endian numpy dtypes
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------------------------------------------------
# file lookup
# --------------------------------------------------------------------------------------------------------------------


def resolve(directory: Path, name: str) -> Path | None:
    """``directory/name`` or else ``directory/name.gz``, whichever exists (the uncompressed file first).

    A directory that cannot be looked into (no permission, an I/O error) raises :class:`DataFileError` naming it."""
    for candidate in (Path(directory) / name, Path(directory) / f"{name}.gz"):
        try:
            if candidate.is_file():
                return candidate
        except OSError as err:
            raise unreadable(Path(directory), err) from err
    return None


def unreadable(path: Path, err: OSError) -> DataFileError:
    """The :class:`DataFileError` for a data file (or its directory) the system refuses to read, saying what to do."""
    import errno

    what = "directory" if path.is_dir() else "file"
    if err.errno in (errno.EACCES, errno.EPERM):
        todo = (
            f"give your user read permission (chmod u+r{'x' if what == 'directory' else ''} {path}), or point "
            "paths.data_dir at a readable copy"
        )
    elif err.errno == errno.EIO:
        todo = "the disk or the network file system failed to read it: copy the data set again, or check the disk"
    else:
        todo = "point paths.data_dir at a readable copy of the data set"
    return DataFileError(f"{path}: cannot read this data {what} ({err.strerror or err}): {todo}")


def find_files(names: Sequence[str], dirs: Sequence[Path]) -> Path | None:
    """The first of ``dirs`` that holds every one of ``names`` (each as ``name`` or ``name.gz``), else None."""
    for directory in dirs:
        if all(resolve(directory, name) is not None for name in names):
            return Path(directory)
    return None


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if its name ends in ``.gz``; ValueError naming the file if that fails."""
    path = Path(path)
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    except gzip.BadGzipFile as err:
        raise DataFileError(f"{path}: not a readable gzip file ({err})") from err
    except EOFError as err:  # a cut-off stream
        raise DataFileError(f"{path}: not a readable gzip file ({err})") from err
    except OSError as err:  # no permission, an I/O error: the system refused to read it
        if err.errno is None:  # zlib's errors ("invalid stored block lengths") are OSErrors without errno
            raise DataFileError(f"{path}: not a readable gzip file ({err})") from err
        raise unreadable(path, err) from err


# --------------------------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or not) into a native-endian numpy array of the shape its header gives.

    Raises ValueError naming the file if the magic number is wrong (the first two bytes must be zero), the dtype
    code is unknown, or the data is shorter (truncated) or longer than the header's sizes say.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFileError(f"{path}: truncated IDX file ({len(data)} bytes, the header alone needs at least 4)")
    if data[0] != 0 or data[1] != 0:
        raise DataFileError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (an IDX file starts with two zero bytes); not an IDX file?"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataFileError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: 0x08 uint8, 0x09, 0x0b-0x0e)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated IDX file ({len(data)} bytes, the {ndim}-d header needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual < expected:
        raise DataFileError(f"{path}: truncated IDX file: shape {shape} needs {expected} data bytes, found {actual}")
    if actual > expected:
        raise DataFileError(f"{path}: {actual - expected} bytes after the data of shape {shape} (corrupt IDX file?)")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable native-endian copy


def read_mnist(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` from the four IDX files in ``directory`` (MNIST or Fashion-MNIST).

    Images are uint8 ``[N, 1, H, W]`` (a channel axis added to the files' ``[N, H, W]``), labels int64 ``[N]``.
    """
    directory = Path(directory)
    arrays = []
    for name in MNIST_FILES:
        path = resolve(directory, name)
        if path is None:
            raise FileNotFoundError(f"{directory / name}[.gz] does not exist")
        arrays.append((path, read_idx(path)))
    out = []
    for (x_path, x), (y_path, y) in (arrays[0:2], arrays[2:4]):
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataFileError(f"{x_path}: expected uint8 images [N, H, W], got {x.dtype} {list(x.shape)}")
        if y.ndim != 1:
            raise DataFileError(f"{y_path}: expected labels [N], got shape {list(y.shape)}")
        if len(x) != len(y):
            raise DataFileError(f"{x_path} holds {len(x)} images but {y_path} holds {len(y)} labels")
        out += [x[:, None], y.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


# --------------------------------------------------------------------------------------------------------------------
# CIFAR "python version"
# --------------------------------------------------------------------------------------------------------------------


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: uint8 ``[N, 3, 32, 32]`` images and int64 ``[N]`` labels.

    Security: ``pickle.loads`` executes whatever code the file asks for. Only load files you trust (the official
    archives; torchvision's CIFAR classes unpickle the same way).
    """
    try:
        batch = pickle.loads(_read_bytes(path), encoding="bytes")  # trusted files only, see above
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise DataFileError(f"{path}: not a readable CIFAR pickle ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFileError(f"{path}: expected a dict with keys b'data' and {label_key!r}, got {keys}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFileError(f"{path}: b'data' must be uint8 [N, 3072], got {data.dtype} {list(data.shape)}")
    if labels.shape != (len(data),):
        raise DataFileError(f"{path}: {len(data)} images but {label_key!r} has shape {list(labels.shape)}")
    return data.reshape(-1, 3, 32, 32), labels  # 1024 R, 1024 G, 1024 B values per row, each a row-major image


def read_cifar(directory: str | os.PathLike, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of CIFAR-``kind`` (10 or 100) from the folder holding its batches.

    ``directory`` is the extracted ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``) or
    ``cifar-100-python`` (``train``, ``test``; the fine labels) folder. Images are uint8 ``[N, 3, 32, 32]``,
    labels int64 ``[N]``. The files are pickles: only load files you trust (see :func:`_read_cifar_batch`).
    """
    if kind not in (10, 100):
        raise ValueError(f"CIFAR kind must be 10 or 100, got {kind!r}")
    directory = Path(directory)
    names, label_key = (CIFAR10_FILES, b"labels") if kind == 10 else (CIFAR100_FILES, b"fine_labels")
    batches = []
    for name in names:
        path = resolve(directory, name)
        if path is None:
            raise FileNotFoundError(f"{directory / name}[.gz] does not exist")
        batches.append(_read_cifar_batch(path, label_key))
    train, test = batches[:-1], batches[-1]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, test[0], test[1]


# --------------------------------------------------------------------------------------------------------------------
# which data set is where, and downloading
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetFiles:
    """How one data set is stored: its files, torchvision's class and folder, and how a person gets the files."""

    title: str  # for messages
    files: tuple[str, ...]
    torchvision_class: str  # torchvision.datasets.<this>(root, download=True) fetches the files
    folder: str  # the sub-folder of data_dir where torchvision puts them
    manual_hint: str  # "{data_dir}" is replaced


DATASETS: dict[str, DatasetFiles] = {
    "FashionMNIST": DatasetFiles(
        "Fashion-MNIST",
        MNIST_FILES,
        "FashionMNIST",
        "FashionMNIST/raw",
        "`sudo apt-get install dataset-fashion-mnist` (puts them in /usr/share/datasets/fashion-mnist), "
        "or copy the four IDX files (" + ", ".join(MNIST_FILES) + "; .gz or not) into {data_dir}/FashionMNIST/raw",
    ),
    "MNIST": DatasetFiles(
        "MNIST",
        MNIST_FILES,
        "MNIST",
        "MNIST/raw",
        "copy the four IDX files (" + ", ".join(MNIST_FILES) + "; .gz or not) into {data_dir}/MNIST/raw",
    ),
    "CIFAR10": DatasetFiles(
        "CIFAR-10",
        CIFAR10_FILES,
        "CIFAR10",
        "cifar-10-batches-py",
        "download cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and extract it, "
        "so that the folder cifar-10-batches-py lies in {data_dir}",
    ),
    "CIFAR100": DatasetFiles(
        "CIFAR-100",
        CIFAR100_FILES,
        "CIFAR100",
        "cifar-100-python",
        "download cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and extract it, "
        "so that the folder cifar-100-python lies in {data_dir}",
    ),
}


def search_dirs(name: str, data_dir: str | os.PathLike) -> list[Path]:
    """The directories searched for data set ``name`` (a key of :data:`DATASETS`), in order."""
    spec = DATASETS[name]
    data_dir = Path(data_dir).expanduser()
    dirs = [data_dir / spec.folder]
    if spec.folder.endswith("/raw"):  # MNIST-like: <data_dir>/<Name>/raw, <data_dir>/<Name>, <data_dir>
        dirs.append(data_dir / spec.folder.removesuffix("/raw"))
    dirs.append(data_dir)
    if name == "FashionMNIST":
        dirs += [Path(d) for d in DEBIAN_FASHION_MNIST_DIRS]  # read at call time: tests monkeypatch the list
    return dirs


def missing_files_error(name: str, data_dir: str | os.PathLike, searched: Sequence[Path], reason: str):
    """The FileNotFoundError for a data set that is nowhere: where we looked, why no download, how to get it."""
    spec = DATASETS[name]
    lines = [
        f"{spec.title} not found: no directory holds all of {', '.join(spec.files)} (each may be gzipped).",
        "Searched:",
        *(f"  {os.path.abspath(d)}" for d in searched),
        reason,
        "To get the files: " + spec.manual_hint.format(data_dir=os.path.abspath(data_dir)) + ".",
    ]
    return FileNotFoundError("\n".join(lines))


def _one_line(err: BaseException, limit: int = 400) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets without their own timeout (torchvision's ``urlopen``) this one, so a stalled network fails."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if before is None else before)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def download_with_torchvision(
    name: str, root: str | os.PathLike, searched: Sequence[Path] = (), data_dir: str | os.PathLike | None = None
) -> None:
    """Fetch data set ``name`` into ``root`` with ``torchvision.datasets.<Class>(root, download=True)``.

    torchvision knows the URLs and checks the md5 sums; the files land in torchvision's layout
    (``root/FashionMNIST/raw``, ``root/cifar-10-batches-py``...), which :func:`search_dirs` searches first. Any
    failure (no network: URLError/OSError; torchvision's RuntimeError after all mirrors failed; a bad checksum...)
    becomes the FileNotFoundError of :func:`missing_files_error`, with the reason on one line.
    """
    spec = DATASETS[name]
    searched = list(searched) or search_dirs(name, data_dir or root)
    try:
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, spec.torchvision_class)  # looked up now: tests replace it
        Path(root).mkdir(parents=True, exist_ok=True)
        with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
            dataset_class(str(root), download=True)
    except Exception as err:  # whatever went wrong, the person needs the same message: where to put the files
        reason = f"Downloading with torchvision.datasets.{spec.torchvision_class} failed: {_one_line(err)}"
        raise missing_files_error(name, data_dir or root, searched, reason) from err


def locate(name: str, data_dir: str | os.PathLike, download: bool = True) -> Path:
    """The directory holding data set ``name``; download it into ``data_dir`` first if it is nowhere.

    Raises FileNotFoundError (searched directories, why there was no download, how to get the files) if the
    files are missing and ``download`` is false or the download fails.
    """
    dirs = search_dirs(name, data_dir)
    found = find_files(DATASETS[name].files, dirs)
    if found is not None:
        return found
    if not download:
        raise missing_files_error(name, data_dir, dirs, "Downloading is off (data.download=false).")
    download_with_torchvision(name, Path(data_dir).expanduser(), dirs, data_dir)
    found = find_files(DATASETS[name].files, dirs)
    if found is None:
        reason = "torchvision's download finished, but the files are still not in any of these directories."
        raise missing_files_error(name, data_dir, dirs, reason)
    return found


# --------------------------------------------------------------------------------------------------------------------
# the data module shared by MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100
# --------------------------------------------------------------------------------------------------------------------


class FileImageDataModule(InMemoryDataModule):
    """An image data set read from files: the official test set, and a validation set carved from training.

    The validation set is ``val_size`` training images, chosen once, stratified by class, with ``split_seed``
    (it does not change with the training seed). Pixels are scaled from 0..255 to [0, 1] (float32).
    A subclass sets ``num_classes``, ``input_shape``, ``dataset`` (a key of :data:`DATASETS`) and implements
    :meth:`read`.
    """

    dataset: str

    @checked
    def __init__(
        self,
        batch_size: BatchSize = 128,
        eval_batch_size: EvalBatchSize = None,
        loader: Loader = "memory",
        num_workers: NumWorkers = 0,
        data_dir: str | os.PathLike = "data",
        download: Annotated[bool, Setting("whether to download missing data files")] = True,
        val_size: Annotated[int, Setting("training images held out for validation", low=1)] = 5000,
        split_seed: SplitSeed = 0,
        num_classes: NumClasses = None,  # the data config's declarations: checked against this data set
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            loader=loader,
            num_workers=num_workers,
            num_classes=num_classes,
            input_shape=input_shape,
        )
        self.data_dir = Path(data_dir).expanduser()
        self.download = bool(download)
        self.val_size = val_size
        self.split_seed = split_seed

    @abstractmethod
    def read(self, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: uint8 images ``[N, *input_shape]``, integer labels ``[N]``."""

    def locate(self) -> Path:
        return locate(self.dataset, self.data_dir, self.download)

    def prepare_data(self) -> None:
        # Lightning calls this on local rank 0 only, before any rank's setup: under DDP only one process downloads,
        # and the others find the files. (Without a trainer, load_splits downloads if needed.)
        self.locate()

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from sklearn.model_selection import train_test_split

        directory = self.locate()
        x_train, y_train, x_test, y_test = self.read(directory)
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                shape = list(x.shape[1:])
                raise DataFileError(f"{directory}: {split} images have shape {shape}, not {self.input_shape}")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataFileError(f"{directory}: {split} labels outside 0..{self.num_classes - 1}")
        n = len(y_train)
        if not 0 < self.val_size < n:
            raise ValueError(f"data.val_size={self.val_size} must be between 1 and {n - 1} ({n} training images)")
        try:
            train, val = train_test_split(
                np.arange(n), test_size=self.val_size, stratify=y_train, random_state=self.split_seed
            )
        except ValueError as err:  # e.g. fewer validation images than classes
            raise ValueError(f"data.val_size={self.val_size}: no stratified split possible: {err}") from err
        parts = {"train": (x_train, y_train, np.sort(train)), "val": (x_train, y_train, np.sort(val))}
        parts["test"] = (x_test, y_test, np.arange(len(y_test)))
        return {
            split: (_scale(x[idx]), torch.from_numpy(y[idx].astype(np.int64))) for split, (x, y, idx) in parts.items()
        }


def _scale(x: np.ndarray) -> torch.Tensor:
    """uint8 0..255 -> float32 [0, 1] (255 -> exactly 1.0)."""
    out = x.astype(np.float32)
    out /= 255.0
    return torch.from_numpy(out)
