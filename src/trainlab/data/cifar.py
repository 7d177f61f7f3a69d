"""CIFAR-10 and CIFAR-100: 60,000 colour 32x32 images each, 10 or 100 classes, read from the "python version".

Both come as 50,000 training and 10,000 test images (the official test set stays the test set); ``val_size``
training images (default 5,000) are held out for validation, stratified by class, with ``split_seed``. Pixels are
scaled from 0..255 to [0, 1]. CIFAR-100 uses the 100 fine labels.

Files are looked for in ``<data_dir>/cifar-10-batches-py`` / ``<data_dir>/cifar-100-python`` (the extracted
archives, torchvision's layout), then in ``<data_dir>``; if they are nowhere and ``download`` is true, torchvision
downloads and extracts them into ``<data_dir>``. The batches are pickles, and unpickling runs code from the file:
only use files you trust. See :mod:`trainlab.data.files`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.data.files import FileImageDataModule, read_cifar


class CIFAR10DataModule(FileImageDataModule):
    """CIFAR-10: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck."""

    num_classes = 10
    input_shape = (3, 32, 32)
    dataset = "CIFAR10"

    def read(self, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return read_cifar(directory, 10)


class CIFAR100DataModule(FileImageDataModule):
    """CIFAR-100: 100 classes (the fine labels) of 500 training and 100 test images each."""

    num_classes = 100
    input_shape = (3, 32, 32)
    dataset = "CIFAR100"

    def read(self, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return read_cifar(directory, 100)
