"""The two models keep their exact sizes and map a batch of digits to 10 logits."""

import pytest
import torch

from mnist_pipeline.models import MLP, MODELS, LeNet5, build_model, count_parameters


@pytest.mark.parametrize(
    ("name", "cls", "expected"), [("lenet5", LeNet5, 61_706), ("mlp", MLP, 64_630)]
)
def test_parameter_counts_are_fixed(name: str, cls: type, expected: int) -> None:
    assert MODELS[name] is cls
    assert count_parameters(build_model(name)) == expected
    assert count_parameters(build_model(name, dropout=0.3)) == expected  # dropout adds none


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_gives_ten_logits_per_image(name: str) -> None:
    model = build_model(name).eval()
    logits = model(torch.zeros(5, 1, 28, 28))
    assert logits.shape == (5, 10)
    assert torch.isfinite(logits).all()


def test_lenet5_layer_shapes() -> None:
    convs = [m for m in LeNet5().modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)),
        (6, 16, (5, 5), (0, 0)),
        (16, 120, (5, 5), (0, 0)),
    ]
    linears = [
        (m.in_features, m.out_features)
        for m in LeNet5().modules()
        if isinstance(m, torch.nn.Linear)
    ]
    assert linears == [(120, 84), (84, 10)]


def test_mlp_layer_shapes() -> None:
    linears = [
        (m.in_features, m.out_features) for m in MLP().modules() if isinstance(m, torch.nn.Linear)
    ]
    assert linears == [(784, 80), (80, 20), (20, 10)]
