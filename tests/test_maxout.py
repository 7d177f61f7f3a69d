"""Maxout (Goodfellow et al., ICML 2013): max over groups of k consecutive features, ReLU as a special case,
k-times wider layers before it, and gradients that reach only the winning piece."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.activations import Activation
from trainlab.activations.maxout import Maxout
from trainlab.models.cnn import CNN
from trainlab.models.mlp import MLP

ROW = [1.0, 5.0, 3.0, 2.0, -1.0, -4.0]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (2, [[5.0, 3.0, -1.0], [-1.0, -2.0, 4.0]]),
        (3, [[5.0, 2.0], [-1.0, 4.0]]),
        (6, [[5.0], [4.0]]),
        (1, [ROW, [-r for r in ROW]]),
    ],
)
def test_maxout_takes_the_max_over_groups_of_k_consecutive_features(pieces: int, expected: list[list[float]]):
    x = torch.tensor([ROW, [-r for r in ROW]])  # second row: -1, -5, -3, -2, 1, 4
    assert torch.equal(Maxout(pieces)(x), torch.tensor(expected))


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_on_images_is_channel_wise_at_every_pixel(pieces: int):
    # 6 channels, 2x2 pixels: channel c at pixel (i, j) holds ROW[c] * (1, -1, 2, 0.5)[pixel]
    scale = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    x = torch.tensor(ROW)[None, :, None, None] * scale
    out = Maxout(pieces)(x)
    assert out.shape == (1, 6 // pieces, 2, 2)
    for g in range(6 // pieces):
        for i in range(2):
            for j in range(2):
                assert out[0, g, i, j] == max(ROW[c] * scale[i, j].item() for c in range(g * pieces, (g + 1) * pieces))
    assert torch.equal(Maxout(2)(x)[0, :, 0, 1], torch.tensor([-1.0, -2.0, 4.0]))  # pixel with scale -1


@pytest.mark.parametrize(("shape", "pieces"), [((2, 5), 2), ((2, 7, 3, 3), 3)])
def test_maxout_rejects_features_that_do_not_split_into_k_pieces(shape: tuple[int, ...], pieces: int):
    with pytest.raises(ValueError, match="groups of"):
        Maxout(pieces)(torch.zeros(shape))


def test_maxout_with_one_piece_fixed_at_zero_is_relu_including_gradients():
    torch.manual_seed(0)
    fan_in, units = 6, 4
    relu_layer = nn.Linear(fan_in, units).double()
    wide = nn.Linear(fan_in, 2 * units).double()
    with torch.no_grad():
        wide.weight.zero_()
        wide.bias.zero_()
        wide.weight[0::2] = relu_layer.weight  # piece 0 of unit i is row 2i; piece 1 (row 2i + 1) stays zero
        wide.bias[0::2] = relu_layer.bias
    x = torch.randn(32, fan_in, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, expected = Maxout(2)(wide(x)), F.relu(relu_layer(x_ref))
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    assert 0.1 < (expected == 0).double().mean() < 0.9  # both pieces win somewhere
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_widens_the_hidden_linear_layer_k_times(pieces: int):
    mlp = MLP(input_shape=(64,), num_classes=10, depth=1, width=32, activation=Activation("maxout", pieces=pieces))
    relu = MLP(input_shape=(64,), num_classes=10, depth=1, width=32, activation=Activation("relu"))
    hidden, out = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    assert hidden.weight.shape == (32 * pieces, 64) and hidden.bias.shape == (32 * pieces,)
    assert out.in_features == 32  # the classifier sees one value per maxout unit
    relu_hidden = [m for m in relu.modules() if isinstance(m, nn.Linear)][0]
    assert hidden.weight.numel() + hidden.bias.numel() == pieces * (relu_hidden.weight.numel() + 32)
    assert mlp(torch.randn(3, 64)).shape == (3, 10)


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_widens_every_convolution_k_times_channel_wise(pieces: int):
    cnn = CNN((1, 8, 8), 10, channels=[8], hidden=16, activation=Activation("maxout", pieces=pieces))
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8 * pieces), (8, 8 * pieces)]
    hidden = [m for m in cnn.modules() if isinstance(m, nn.Linear)][0]
    assert hidden.in_features == 8 * 4 * 4 and hidden.out_features == 16 * pieces
    assert cnn(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(5, 12), (2, 12, 3, 3)])
def test_maxout_gradient_reaches_only_the_winning_piece(shape: tuple[int, ...]):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)  # continuous values: no ties
    Maxout(3)(x).sum().backward()
    groups = x.detach().unflatten(1, (4, 3))
    winners = F.one_hot(groups.argmax(dim=2), 3).movedim(-1, 2).flatten(1, 2).to(x.dtype)
    assert torch.equal(x.grad, winners)
    assert x.grad.sum() == x.numel() // 3  # exactly one winner per group
