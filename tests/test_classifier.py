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
    assert clf.train_acc.mean_value.item() == 1 and clf.train_loss.weight.item() == 2  # 1 of 2 correct: accuracy 0.5
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


def test_the_training_loss_is_the_mean_over_the_epochs_samples():
    clf = make_classifier()
    batches = [(torch.randn(3, 4), torch.tensor([0, 1, 2])), (torch.randn(1, 4), torch.tensor([1]))]
    losses = [clf.training_step(batch, i).item() for i, batch in enumerate(batches)]
    assert math.isclose(clf.train_loss.compute().item(), (3 * losses[0] + losses[1]) / 4, rel_tol=1e-6)


class Members(nn.Module):
    """An ensemble's output: K members' logits [K, N, C]."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_an_ensembles_training_loss_is_its_mean_members_and_its_accuracy_its_predictions():
    # member 0 is sure of class 0, member 1 mildly of class 1: the ensemble (mean probability) predicts class 0
    logits = torch.tensor([[[4.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    clf = Classifier(net=Members(logits), num_classes=3, optimizer=partial(torch.optim.SGD, lr=0.1))
    y = torch.tensor([1])
    loss = clf.training_step((torch.zeros(1, 4), y), 0)
    member_losses = [F.cross_entropy(member, y).item() for member in logits]
    assert math.isclose(loss.item(), sum(member_losses), rel_tol=1e-6)  # each member learns from its own loss
    assert math.isclose(clf.train_loss.compute().item(), sum(member_losses) / 2, rel_tol=1e-6)
    assert clf.train_acc.compute().item() == 0.0  # the ensemble predicts class 0; member 1 alone would be right


def test_every_fit_has_the_history_and_the_divergence_guard_unless_it_is_turned_off():
    from trainlab.callbacks.divergence import DivergenceGuard
    from trainlab.callbacks.history import History

    clf = make_classifier()
    kinds = [type(c) for c in clf.configure_callbacks()]
    assert kinds == [DivergenceGuard, History] and clf.configure_callbacks()[1] is clf.history
    clf.divergence_guard = False  # the learning-rate range test
    assert [type(c) for c in clf.configure_callbacks()] == [History]


def draws() -> tuple:
    import random

    import numpy as np

    return torch.rand(3), np.random.rand(3), random.random()


def same_draws(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and bool((a[1] == b[1]).all()) and a[2] == b[2]


def test_the_random_state_survives_a_weights_only_checkpoint(tmp_path):
    torch.save({"rng": rng.capture()}, tmp_path / "state.pt")
    a = draws()
    rng.restore(torch.load(tmp_path / "state.pt", weights_only=True)["rng"])
    assert same_draws(a, draws())


def test_draws_inside_rng_kept_leave_the_random_state_as_it_was():
    state = rng.capture()
    expected = draws()
    rng.restore(state)
    with rng.kept():
        draws()
    assert same_draws(expected, draws())
