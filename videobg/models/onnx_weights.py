"""Copy the convolution weights of an ONNX export onto a hand-written torch module.

The exports have BatchNorm folded into the conv weights and most initializers carry numeric names
("824", "1967"), so names cannot be matched. Instead the graph is walked in node order, which for these
exports is the order the layers run in, and the i-th distinct Conv weight goes to the i-th conv layer of
the module (its registration order). Kernel, stride, dilation, groups and tensor shapes are checked on
every pair, so an architecture slip fails loudly instead of loading garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn


@dataclass
class OnnxConv:
    node: str  # output name of the node, for error messages
    op: str  # "Conv" | "ConvTranspose"
    weight: np.ndarray
    bias: np.ndarray | None
    attrs: dict = field(default_factory=dict)


def read_graph(path: str | Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def graph_convs(model: onnx.ModelProto) -> list[OnnxConv]:
    """Conv / ConvTranspose layers in graph order; a weight used by several nodes is listed once."""
    inits = initializers(model)
    seen: set[str] = set()
    convs: list[OnnxConv] = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        w_name = node.input[1]
        if w_name in seen:
            continue
        seen.add(w_name)
        b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        convs.append(
            OnnxConv(
                node=node.output[0],
                op=node.op_type,
                weight=inits[w_name],
                bias=inits[b_name] if b_name else None,
                attrs=attrs,
            )
        )
    return convs


def _check(layer: nn.Conv2d | nn.ConvTranspose2d, conv: OnnxConv, index: int) -> None:
    want_op = "ConvTranspose" if isinstance(layer, nn.ConvTranspose2d) else "Conv"
    got = {
        "op": conv.op,
        "weight": tuple(conv.weight.shape),
        "kernel": tuple(conv.attrs.get("kernel_shape", conv.weight.shape[2:])),
        "stride": tuple(conv.attrs.get("strides", (1, 1))),
        "dilation": tuple(conv.attrs.get("dilations", (1, 1))),
        "groups": conv.attrs.get("group", 1),
    }
    want = {
        "op": want_op,
        "weight": tuple(layer.weight.shape),
        "kernel": tuple(layer.kernel_size),
        "stride": tuple(layer.stride),
        "dilation": tuple(layer.dilation),
        "groups": layer.groups,
    }
    if got != want:
        raise ValueError(f"conv #{index} (ONNX node {conv.node}): graph has {got}, module has {want}")
    if conv.bias is not None and layer.bias is None:
        raise ValueError(f"conv #{index} (ONNX node {conv.node}): graph has a bias, module layer has none")


def conv_layers(module: nn.Module) -> list[nn.Conv2d | nn.ConvTranspose2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


@torch.no_grad()
def load_convs(module: nn.Module, convs: list[OnnxConv]) -> None:
    """Copy `convs` (graph order) onto the conv layers of `module` (registration order), checking each."""
    layers = conv_layers(module)
    if len(layers) != len(convs):
        raise ValueError(f"{type(module).__name__} has {len(layers)} conv layers, the graph {len(convs)}")
    for i, (layer, conv) in enumerate(zip(layers, convs, strict=True)):
        _check(layer, conv, i)
        layer.weight.copy_(torch.tensor(conv.weight))
        if layer.bias is not None:
            # A module bias with no graph bias stays for the caller to fill (e.g. a folded Add).
            layer.bias.zero_()
            if conv.bias is not None:
                layer.bias.copy_(torch.tensor(conv.bias))
