"""Augmented images per second: trainlab's batched on-device path against torchvision per-sample transforms.

Both paths apply the same list (pad-4 random crop, horizontal flip, normalisation, cutout 16) to CIFAR-shaped
images (3x32x32, synthetic: the speed does not depend on the pixel values) and hand batches of 256 to the training
loop. trainlab: the images sit in one tensor; each batch is sliced from it and augmented as a batch
(trainlab.augment, per-sample parameters, vectorised). torchvision: a DataLoader over the same tensor applies
v2.RandomCrop + v2.RandomHorizontalFlip + v2.Normalize + a per-sample cutout to each image, with 0 and 2 worker
processes; the faster of the two is the baseline. Each figure is the median of REPEATS passes over the data.

    python benchmarks/bench_augment.py            # prints the table, writes benchmarks/results/augment.{json,md}

Exits 1 when the ratio is below the target (3x on CPU).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from trainlab.augment import Cutout, HFlip, RandomCrop, per_sample_transform
from trainlab.data.loader import TensorLoader

N, BATCH, REPEATS, TARGET = 10_000, 256, 5, 3.0
MEAN, STD = torch.tensor([0.49, 0.48, 0.45]).view(3, 1, 1), torch.tensor([0.25, 0.24, 0.26]).view(3, 1, 1)
RESULTS = Path(__file__).parent / "results"


def build_augment(shape=(3, 32, 32)):
    """crop (padding 4) and hflip (p 0.5) in their canonical order, and cutout (size 16), as augment=[...] builds them."""
    pixel = torch.nn.Sequential(HFlip(0.5, input_shape=shape), RandomCrop(4, input_shape=shape))
    return pixel, Cutout(16, input_shape=shape)


def batched(images: torch.Tensor, labels: torch.Tensor) -> float:
    pixel, cutout = build_augment()
    pixel.train(), cutout.train()
    loader = TensorLoader(images, labels, batch_size=BATCH, shuffle=True, seed=0)
    start = time.perf_counter()
    for x, _ in loader:
        x = cutout((pixel(x) - MEAN) / STD)
    return len(images) / (time.perf_counter() - start)


class PerSample(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def per_sample(images: torch.Tensor, labels: torch.Tensor, workers: int) -> float:
    from torchvision.transforms import v2

    pixel, cutout = build_augment()
    transform = v2.Compose([per_sample_transform(pixel), v2.Normalize(MEAN.flatten(), STD.flatten()),
                            cutout.per_sample()])
    loader = DataLoader(PerSample(images, labels, transform), batch_size=BATCH, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return len(images) / (time.perf_counter() - start)


def main() -> int:
    torch.manual_seed(0)
    images, labels = torch.rand(N, 3, 32, 32), torch.randint(0, 10, (N,))
    runs = {"trainlab batched": lambda: batched(images, labels)}
    for workers in (0, 2):
        runs[f"torchvision per-sample, {workers} workers"] = lambda w=workers: per_sample(images, labels, w)
    for fn in runs.values():  # warm-up (imports, worker start-up code paths, allocator)
        fn()
    rates = {name: statistics.median(fn() for _ in range(REPEATS)) for name, fn in runs.items()}
    baseline = max(v for k, v in rates.items() if k.startswith("torchvision"))
    ratio = rates["trainlab batched"] / baseline
    result = {
        "benchmark": "augmented images per second (crop+flip+normalize+cutout, 3x32x32, batch 256)",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "images_per_second": {k: round(v) for k, v in rates.items()},
        "ratio_vs_best_torchvision": round(ratio, 2),
        "target": TARGET,
        "passed": ratio >= TARGET,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "augment.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| path | images/s |", "|---|---|"] + [f"| {k} | {v:,.0f} |" for k, v in rates.items()]
    lines.append(f"\nratio (trainlab / best torchvision): **{ratio:.1f}x** (target >= {TARGET}x) on {result['machine']}")
    (RESULTS / "augment.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
