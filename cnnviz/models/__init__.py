"""Builders: a spec in, a ``torch.nn`` model out (one module per family, shared blocks)."""
from cnnviz.models import custom, densenet, googlenet, nin, plain, resnet, vgg  # noqa: F401
from cnnviz.models.registry import build, build_meta

__all__ = ["build", "build_meta"]
