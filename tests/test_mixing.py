"""mixup, CutMix, label smoothing: targets mixed like the inputs, alpha=0 is the identity, accuracy on hard labels."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.classifier import Classifier
from trainlab.regularizers.mixing import CutMix, LabelSmoothing, Mixup, sample_lambda
from trainlab.techniques import Techniques


def test_mixup_alpha_zero_is_exactly_no_mixup():
    x, y = torch.rand(8, 1, 4, 4), F.one_hot(torch.arange(8) % 3, 3).float()
    mx, my = Mixup(alpha=0.0)(x, y)
    assert mx is x and my is y


def test_mixup_mixes_inputs_and_targets_with_one_lambda_per_batch():
    torch.manual_seed(0)
    n = 16
    x = torch.eye(n)  # sample i is e_i, so the mixed batch reveals lambda and each partner
    target = F.one_hot(torch.randint(0, 5, (n,)), 5).float()
    mx, my = Mixup(alpha=0.4)(x, target)
    diag = mx.diagonal()
    paired = diag != 1  # rows whose partner is another sample
    assert paired.sum() >= n // 2
    lam = diag[paired][0]
    assert torch.allclose(diag[paired], lam.expand(int(paired.sum())))  # one lambda for the whole batch
    partner = torch.where(paired, mx.clone().fill_diagonal_(0).argmax(1), torch.arange(n))
    assert torch.allclose(mx, lam * x + (1 - lam) * x[partner])
    assert torch.allclose(my, lam * target + (1 - lam) * target[partner])


def test_mixup_lambda_follows_beta_alpha_alpha():
    torch.manual_seed(0)
    alpha, n = 0.4, 20000
    lams = torch.tensor([sample_lambda(alpha) for _ in range(n)])
    var = 1 / (4 * (2 * alpha + 1))  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert lams.mean().item() == pytest.approx(0.5, abs=5 * (var / n) ** 0.5)
    assert lams.var().item() == pytest.approx(var, rel=0.05)


def test_cutmix_pastes_a_box_and_mixes_targets_by_its_area():
    torch.manual_seed(0)
    for _ in range(50):
        x = torch.zeros(4, 1, 16, 16)
        x[torch.arange(4), 0] = torch.arange(1.0, 5.0).view(4, 1, 1)  # image i is constant i + 1
        target = F.one_hot(torch.arange(4), 4).float()
        mx, my = CutMix(alpha=1.0)(x, target)
        boxes = 0
        for i in range(4):
            own = (mx[i] == i + 1).float().mean().item()  # the share of image i that is still its own
            assert my[i, i].item() == pytest.approx(own, abs=1e-6)
            assert my[i].sum().item() == pytest.approx(1.0)
            boxes += own < 1
        assert boxes > 0 or mx.equal(x)


def test_cutmix_alpha_zero_is_identity_and_vectors_are_refused():
    x, y = torch.rand(2, 1, 4, 4), torch.eye(2)
    assert CutMix(0.0)(x, y)[0] is x
    with pytest.raises(ValueError, match="cutmix.*images"):
        CutMix(1.0)(torch.rand(2, 5), y)


def test_negative_alpha_is_refused():
    with pytest.raises(ValueError, match=r"alpha=-0\.2: mixup's Beta\(alpha, alpha\) must be a number >= 0$"):
        Mixup(-0.2)
    with pytest.raises(ValueError, match=r"alpha=-1: CutMix's Beta\(alpha, alpha\) must be a number >= 0$"):
        CutMix(-1)
    with pytest.raises(ValueError, match=r"eps=1\.0: label smoothing must be a number in \[0, 1\)$"):
        LabelSmoothing(1.0)


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    eps = 0.1
    techniques = Techniques([LabelSmoothing(eps)])
    clf = Classifier(
        net=nn.Identity(), num_classes=4, optimizer=partial(torch.optim.SGD, lr=0.1), techniques=techniques
    )
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5]])
    y = torch.tensor([0])
    smoothed = (1 - eps) * F.one_hot(y, 4).float() + eps / 4
    expected = -(smoothed * torch.log_softmax(logits, 1)).sum()
    _, target = techniques.on_batch(logits, y, 4)
    assert torch.equal(target, smoothed)
    assert clf.loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert clf.loss(logits, target).item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=eps).item())
    assert clf.training_step((logits, y), 0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_training_accuracy_is_measured_against_the_hard_labels_under_mixing():
    """A 'mix' that swaps every sample with its mirror (lambda = 0): the network predicts the partners' labels,
    so accuracy against the mixed targets would be 1, against the hard labels it is 0."""
    net = nn.Linear(4, 4)
    with torch.no_grad():
        net.weight.copy_(torch.eye(4) * 10)
        net.bias.zero_()

    class Swap:
        stage = "batch"

        def __call__(self, x, target):
            return x.flip(0), target.flip(0)

    optimizer = partial(torch.optim.SGD, lr=0.1)
    clf = Classifier(net=net, num_classes=4, optimizer=optimizer, techniques=Techniques([Swap()]))
    loss = clf.training_step((torch.eye(4), torch.arange(4)), 0)
    assert clf.train_acc.mean_value.item() == 0 and clf.train_loss.weight.item() == 4  # 0 of 4 correct
    assert loss.item() < 0.01  # the loss did use the (swapped) soft targets
