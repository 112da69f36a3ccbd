"""The model registry: each network is one module here, ``nets/<name>.py``, whose class is
marked ``@register`` and is built under the module's name.

Adding a model is that module and an entry under ``models:`` in ``params.yaml``: the
stages, metrics, plots and reports follow from the two. Each class takes the model's
:class:`.NetParams` (its ``net:`` block), which its checkpoint stores and rebuilds it from.
A network module imports only torch and :mod:`mnist_pipeline.core`: the stages of a model
depend on its own module alone, so changing one network retrains that model alone.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from torch import nn

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import NetParams
from mnist_pipeline.core.registry import model_names

MODELS: dict[str, type[nn.Module]] = {}  # each network imported so far, by name
Net = TypeVar("Net", bound=type[nn.Module])


def register(cls: Net) -> Net:
    """Class decorator: make ``cls`` the network named after its module."""
    MODELS[cls.__module__.rsplit(".", 1)[-1]] = cls
    return cls


def net_class(name: str) -> type[nn.Module]:
    """The class registered in ``nets/<name>.py``."""
    if name not in model_names():
        raise PipelineError(
            f"model '{name}' has no network behind it; known models: {', '.join(model_names())}"
        )
    importlib.import_module(f"{__name__}.{name}")
    if name not in MODELS:
        raise PipelineError(f"{__name__}.{name} registers no network: mark its class @register")
    return MODELS[name]


def build_model(name: str, net: NetParams) -> nn.Module:
    """A new, randomly initialised network ``name`` with the settings ``net``."""
    return net_class(name)(net)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
