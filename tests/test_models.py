"""The registry builds each network from its settings; the networks keep their exact sizes
and map a batch of digits to 10 logits."""

import pytest
import torch

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import NetParams
from mnist_pipeline.core.registry import model_names
from mnist_pipeline.model.nets import MODELS, build_model, count_parameters, net_class
from mnist_pipeline.model.nets.lenet5 import LeNet5
from mnist_pipeline.model.nets.mlp import MLP

NET = NetParams()


def test_the_registry_is_the_folder_of_networks() -> None:
    assert model_names() == ["lenet5", "mlp"]
    assert (net_class("lenet5"), net_class("mlp")) == (LeNet5, MLP)
    assert MODELS["lenet5"] is LeNet5 and MODELS["mlp"] is MLP


def test_an_unknown_network_names_the_known_ones() -> None:
    with pytest.raises(
        PipelineError, match="model 'resnet' has no network behind it; known models: lenet5, mlp"
    ):
        build_model("resnet", NET)


@pytest.mark.parametrize(("name", "expected"), [("lenet5", 61_706), ("mlp", 64_630)])
def test_parameter_counts_are_fixed(name: str, expected: int) -> None:
    assert count_parameters(build_model(name, NET)) == expected
    with_dropout = build_model(name, NetParams(dropout=0.3, deskew=True))
    assert count_parameters(with_dropout) == expected  # dropout and deskew add none


def test_the_settings_reach_the_network() -> None:
    dropouts = [m.p for m in build_model("lenet5", NetParams(dropout=0.3)).modules()
                if isinstance(m, torch.nn.Dropout)]  # fmt: skip
    assert dropouts == [0.3, 0.3]


@pytest.mark.parametrize("name", model_names())
def test_forward_gives_ten_logits_per_image(name: str) -> None:
    model = build_model(name, NET).eval()
    logits = model(torch.zeros(5, 1, 28, 28))
    assert logits.shape == (5, 10)
    assert torch.isfinite(logits).all()


def test_lenet5_layer_shapes() -> None:
    net = LeNet5(NET)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)),
        (6, 16, (5, 5), (0, 0)),
        (16, 120, (5, 5), (0, 0)),
    ]
    linears = [
        (m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)
    ]
    assert linears == [(120, 84), (84, 10)]


def test_mlp_layer_shapes() -> None:
    linears = [(m.in_features, m.out_features) for m in MLP(NET).modules()
               if isinstance(m, torch.nn.Linear)]  # fmt: skip
    assert linears == [(784, 80), (80, 20), (20, 10)]
