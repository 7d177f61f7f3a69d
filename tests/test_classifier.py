"""The LightningModule's loss, metrics and optimisation wiring."""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from trainlab import rng
from trainlab.classifier import Classifier, hard_labels


def make_classifier(**kwargs) -> Classifier:
    net = nn.Linear(4, 3)
    return Classifier(net=net, num_classes=3, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)


def test_loss_is_cross_entropy_for_hard_and_soft_targets():
    clf = make_classifier()
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    expected = -(torch.log_softmax(logits, 1)[[0, 1], [0, 2]]).mean()
    assert torch.allclose(clf.loss(logits, y), expected)
    # one-hot probabilities give the same loss as the indices
    assert torch.allclose(clf.loss(logits, F.one_hot(y, 3).float()), expected)
    # a uniform target on uniform logits: ln(3)
    assert math.isclose(clf.loss(torch.zeros(1, 3), torch.full((1, 3), 1 / 3)).item(), math.log(3), rel_tol=1e-6)


def test_accuracy_uses_hard_labels_of_soft_targets():
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.2, 0.7]])
    assert hard_labels(soft).tolist() == [0, 2]
    assert hard_labels(torch.tensor([1, 2])).tolist() == [1, 2]
    net = nn.Linear(3, 3)
    with torch.no_grad():
        net.weight.copy_(torch.eye(3) * 5)
        net.bias.zero_()
    clf = Classifier(net=net, num_classes=3, optimizer=partial(torch.optim.SGD, lr=0.1))
    x = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])  # logits [5, 0, 0] twice: right for the first, wrong for the second
    clf.training_step((x, soft), 0)
    assert clf.train_acc.tp.item() == 1 and clf.train_loss.weight.item() == 2  # 1 of 2 correct: accuracy 0.5
    assert clf.train_acc.compute().item() == 0.5


def test_onecycle_total_steps_is_filled_from_the_trainer():
    sched = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None)
    clf = make_classifier(scheduler=sched, scheduler_interval="step")
    clf.trainer = SimpleNamespace(estimated_stepping_batches=123)  # only the attribute it reads
    conf = Classifier.configure_optimizers(clf)
    assert conf["lr_scheduler"]["scheduler"].total_steps == 123
    assert conf["lr_scheduler"]["interval"] == "step"


def test_plateau_scheduler_gets_its_monitor():
    sched = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="min")
    clf = make_classifier(scheduler=sched, scheduler_monitor="val/loss")
    conf = clf.configure_optimizers()
    assert conf["lr_scheduler"]["monitor"] == "val/loss"


def test_rng_state_round_trip_reproduces_draws():
    import random

    import numpy as np

    state = rng.capture()
    a = (torch.rand(3), np.random.rand(3), random.random())
    rng.restore(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
