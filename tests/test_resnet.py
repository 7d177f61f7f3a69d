"""The CIFAR pre-activation ResNet (He et al. 2016): depth 6n+2, stage widths, parameter count, maxout, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.activations import Activation
from trainlab.activations.maxout import Maxout, MaxoutNorm2d
from trainlab.models.resnet import PreActBlock, ResNet


def blocks(model: nn.Module) -> list[PreActBlock]:
    return [m for m in model.modules() if isinstance(m, PreActBlock)]


@pytest.mark.parametrize(("depth", "n"), [(20, 3), (8, 1), (14, 2)])
def test_depth_6n_plus_2_gives_n_blocks_per_stage_of_width_2width_4width(depth: int, n: int):
    model = ResNet((3, 32, 32), 10, depth=depth, width=16)
    found = blocks(model)
    assert len(found) == 3 * n
    assert [b.residual.branch[0].out_channels for b in found] == [16] * n + [32] * n + [64] * n
    for i, b in enumerate(found):
        if i in (n, 2 * n):  # first block of stages 2 and 3: halves the image and doubles the channels
            assert isinstance(b.project, nn.Conv2d)
            assert b.project.kernel_size == (1, 1) and b.project.stride == (2, 2)
            assert b.residual.branch[0].stride == (2, 2)
        else:
            assert b.project is None
    assert model.head[-1].in_features == 64


@pytest.mark.parametrize(("input_shape", "depth"), [((1, 8, 8), 8), ((3, 32, 32), 20)])
def test_output_has_one_logit_per_class(input_shape: tuple[int, int, int], depth: int):
    torch.manual_seed(0)
    model = ResNet(input_shape, 10, depth=depth, width=8).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [10, 0, 7, 2, 9])
def test_invalid_depth_is_rejected_with_the_valid_depths(depth: int):
    # below 8: the declared range (the argument named); 6n+2 otherwise: the constructor's own check (the config key)
    with pytest.raises(
        ValueError, match=rf"(^depth={depth}: .*must be an integer >= 8$)|(^model\.depth={depth}: )"
    ) as err:
        ResNet((3, 32, 32), 10, depth=depth)
    assert "8, 14, 20, 32, 44, 56, 110" in str(err.value)


def test_invalid_width_is_rejected():
    with pytest.raises(ValueError, match=r"^width=0: channels of the ResNet's first stage must be an integer >= 1$"):
        ResNet((3, 32, 32), 10, width=0)


def closed_form_parameters(n: int, width: int, in_ch: int, classes: int) -> int:
    """Convs without bias (k*k*in*out), every BatchNorm 2 C, 1x1 projections in*out, final Linear C*classes+classes."""
    total, c = 9 * in_ch * width, width  # stem
    for out in (width, 2 * width, 4 * width):
        for i in range(n):
            cin = c if i == 0 else out
            total += 2 * cin + 9 * cin * out + 2 * out + 9 * out * out  # pre-BN, conv, BN, conv
            total += cin * out if cin != out else 0  # 1x1 projection
        c = out
    return total + 2 * c + c * classes + classes  # head BN + Linear


def test_resnet20_has_the_closed_form_parameter_count_of_the_paper():
    model = ResNet((3, 32, 32), 10, depth=20, width=16)
    count = sum(p.numel() for p in model.parameters())
    # by hand: stem 432, stage 1 3 x 4672, stage 2 14432 + 2 x 18560, stage 3 57536 + 2 x 73984, head 128 + 650
    assert closed_form_parameters(3, 16, 3, 10) == 272_282
    assert count == 272_282  # He et al.: 0.27M for ResNet-20
    maxout = ResNet((3, 32, 32), 10, depth=20, width=16, activation=Activation("maxout"))
    norms = [m for m in maxout.modules() if isinstance(m, MaxoutNorm2d)]
    extra = sum(m.norm.num_features for m in norms) * 2  # (gamma, beta) per channel -> 2 pairs per channel
    assert sum(p.numel() for p in maxout.parameters()) == 272_282 + extra


def test_maxout_resnet_replaces_every_batchnorm_activation_pair_with_maxout_norm():
    model = ResNet((3, 8, 8), 10, depth=14, width=4, activation=Activation("maxout"))
    norms = [m for m in model.modules() if isinstance(m, MaxoutNorm2d)]
    assert len(norms) == 2 * 6 + 1  # two per block, one in the head
    assert all(m.pieces == 2 and m.weight.shape == (2, m.norm.num_features) for m in norms)
    inner = {id(m.norm) for m in norms}
    assert all(id(m) in inner for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(isinstance(m, (Maxout, nn.ReLU)) for m in model.modules())


@pytest.mark.parametrize("training", [False, True])
def test_maxout_norm_at_initialisation_is_batchnorm_followed_by_relu(training: bool):
    torch.manual_seed(0)
    maxout, reference = MaxoutNorm2d(5, pieces=2), nn.BatchNorm2d(5, affine=False)
    for norm in (maxout.norm, reference):
        norm.running_mean.copy_(torch.linspace(-1.0, 1.0, 5))
        norm.running_var.copy_(torch.linspace(0.5, 2.0, 5))
    maxout.train(training)
    reference.train(training)
    x = 2.0 * torch.randn(4, 5, 3, 3) + 0.5
    out, expected = maxout(x), F.relu(reference(x))
    assert torch.allclose(out, expected, atol=1e-6)
    assert (out == 0).float().mean() > 0.2  # the zero piece wins somewhere: the ReLU, not the identity


def test_a_few_adam_steps_on_one_batch_halve_the_loss():
    torch.manual_seed(0)
    model = ResNet((3, 8, 8), 10, depth=8, width=8)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(21):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert 1.5 < losses[0] < 3.5  # about ln 10 at initialisation
    assert losses[-1] < 0.5 * losses[0]
