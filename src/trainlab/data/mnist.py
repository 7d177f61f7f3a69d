"""MNIST and Fashion-MNIST: 70,000 greyscale 28x28 images each, 10 classes, read from their IDX files.

Both come as 60,000 training and 10,000 test images (the official test set stays the test set); ``val_size``
training images (default 5,000) are held out for validation, stratified by class, with ``split_seed``. Pixels are
scaled from 0..255 to [0, 1].

Files are looked for in ``<data_dir>/<Name>/raw`` (torchvision's layout; ``Name`` = ``MNIST`` / ``FashionMNIST``),
``<data_dir>/<Name>``, ``<data_dir>`` and, for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (the Debian
package ``dataset-fashion-mnist``); if they are nowhere and ``download`` is true, torchvision downloads them into
``<data_dir>/<Name>/raw``. See :mod:`trainlab.data.files`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.data.files import FileImageDataModule, read_mnist


class FashionMNISTDataModule(FileImageDataModule):
    """Fashion-MNIST (Zalando): T-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot."""

    num_classes = 10
    input_shape = (1, 28, 28)
    dataset = "FashionMNIST"

    def read(self, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return read_mnist(directory)


class MNISTDataModule(FileImageDataModule):
    """MNIST: the handwritten digits 0-9."""

    num_classes = 10
    input_shape = (1, 28, 28)
    dataset = "MNIST"

    def read(self, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return read_mnist(directory)
