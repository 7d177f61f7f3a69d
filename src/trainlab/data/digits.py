"""scikit-learn's handwritten digits (the embedded default data set).

1,797 greyscale 8x8 images of the digits 0-9 (UCI ML hand-written digits, 16 grey levels), shipped inside the
scikit-learn wheel: nothing is downloaded. Test and validation sets are carved out once, stratified by class,
with ``split_seed``; they never change with the training seed.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from trainlab.settings import Setting, checked


class DigitsDataModule(InMemoryDataModule):
    num_classes = 10
    input_shape = (1, 8, 8)

    @checked
    def __init__(
        self,
        batch_size: BatchSize = 64,
        val_fraction: Annotated[
            float, Setting("share of digits held out for validation", low=0, high=1, low_open=True, high_open=True)
        ] = 0.15,
        test_fraction: Annotated[
            float, Setting("share of digits held out for testing", low=0, high=1, low_open=True, high_open=True)
        ] = 0.15,
        split_seed: SplitSeed = 0,
        eval_batch_size: EvalBatchSize = None,
        loader: Loader = "memory",
        num_workers: NumWorkers = 0,
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
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x = (x.astype(np.float32) / 16.0).reshape(-1, *self.input_shape)  # 0..16 grey levels -> [0, 1]
        y = y.astype(np.int64)
        idx = np.arange(len(y))
        rest, test = train_test_split(idx, test_size=self.test_fraction, stratify=y, random_state=self.split_seed)
        train, val = train_test_split(
            rest,
            test_size=self.val_fraction / (1.0 - self.test_fraction),
            stratify=y[rest],
            random_state=self.split_seed,
        )
        return {
            name: (torch.from_numpy(x[part]), torch.from_numpy(y[part]))
            for name, part in (("train", train), ("val", val), ("test", test))
        }
