"""Copy the convolution weights of an ONNX export onto a hand-written torch module.

The exports have BatchNorm folded into the conv weights and most initializers carry numeric names
("824", "1967"), so names cannot be matched. Instead the graph is walked in node order, which for these
exports is the order the layers run in, and the i-th distinct Conv weight goes to the i-th conv layer of
the module (its registration order). Kernel, stride, dilation, groups and tensor shapes are checked on
every pair, so an architecture slip fails loudly instead of loading garbage.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class OnnxConv:
    node: str  # output name of the node, for error messages
    op: str  # "Conv" | "ConvTranspose"
    weight: np.ndarray
    bias: np.ndarray | None
    attrs: dict = field(default_factory=dict)


# The few parts of an ONNX file that loading needs, read straight from its protobuf encoding: the `onnx`
# package costs ~1 s of start-up (its ml_dtypes extension alone ~0.9 s of CPU), which every job paid
# before its first frame. Field numbers are onnx.proto's (ModelProto.graph = 7, GraphProto.node = 1 and
# .initializer = 5, ...); names mirror the onnx classes so that code reads the same either way.


@dataclass
class OnnxTensor:
    name: str
    array: np.ndarray


@dataclass
class OnnxNode:
    op_type: str
    input: list[str]
    output: list[str]
    attrs: dict[str, Any]  # Conv's kernel_shape/strides/dilations/pads as lists, group as an int


@dataclass
class OnnxGraph:
    node: list[OnnxNode]
    initializer: list[OnnxTensor]


@dataclass
class OnnxModel:
    graph: OnnxGraph


# TensorProto.DataType -> numpy dtype (the types these exports use, and their neighbours)
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 10: np.float16}
_DTYPES |= {11: np.float64, 12: np.uint32, 13: np.uint64}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: an int for varints and fixed-width fields
    (raw bits), a memoryview (no copy: weights can be hundreds of MB) for length-delimited ones."""
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > end:
            raise ValueError(f"truncated protobuf (field {number})")
        out.append((number, wire, value))
    return out


def _signed(v: int) -> int:  # int64 varints are two's complement on 64 bits
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wire: int, value: Any) -> list[int]:
    """A repeated int64 field's values: one varint, or a packed run of them."""
    if wire == 0:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


def _floats(wire: int, value: Any) -> list[float]:
    if wire == 5:
        return [struct.unpack("<f", value.to_bytes(4, "little"))[0]]
    return list(np.frombuffer(value, "<f4").astype(float))


def _tensor(buf: memoryview) -> OnnxTensor:
    dims: list[int] = []
    name, dtype, raw = "", 1, None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dims += _ints(wire, value)
        elif number == 2:
            dtype = value
        elif number == 4:
            floats += _floats(wire, value)
        elif number in (5, 7):  # int32_data, int64_data
            ints += _ints(wire, value)
        elif number == 8:
            name = bytes(value).decode()
        elif number == 9:
            raw = value
        elif number == 13:
            raise ValueError(f"tensor {name or '?'}: external data is not supported")
    if dtype not in _DTYPES:
        raise ValueError(f"tensor {name}: unsupported ONNX data type {dtype}")
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, np_dtype).astype(_DTYPES[dtype])
    else:
        array = np.array(floats if floats else ints, _DTYPES[dtype])
    return OnnxTensor(name, array.reshape(dims))


# AttributeProto fields: f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, strings = 9
def _attribute(buf: memoryview) -> tuple[str, Any]:
    name, kind, scalar = "", 0, None
    listed: list[Any] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            name = bytes(value).decode()
        elif number == 20:
            kind = value
        elif number == 2:
            scalar = struct.unpack("<f", value.to_bytes(4, "little"))[0]
        elif number == 3:
            scalar = _signed(value)
        elif number == 4:
            scalar = bytes(value)
        elif number == 5:
            scalar = _tensor(value).array
        elif number == 7:
            listed += _floats(wire, value)
        elif number == 8:
            listed += _ints(wire, value)
        elif number == 9:
            listed.append(bytes(value))
    # AttributeType: FLOAT 1, INT 2, STRING 3, TENSOR 4; FLOATS 6, INTS 7, STRINGS 8
    return name, listed if kind in (6, 7, 8) else scalar


def _node(buf: memoryview) -> OnnxNode:
    node = OnnxNode("", [], [], {})
    for number, _, value in _fields(buf):
        if number == 1:
            node.input.append(bytes(value).decode())
        elif number == 2:
            node.output.append(bytes(value).decode())
        elif number == 4:
            node.op_type = bytes(value).decode()
        elif number == 5:
            key, attr = _attribute(value)
            node.attrs[key] = attr
    return node


def parse_model(data: bytes) -> OnnxModel:
    """An ONNX file's bytes -> its graph's nodes (in order) and initializers. Raises ValueError."""
    graph = OnnxGraph([], [])
    try:
        for number, _, value in _fields(memoryview(data)):
            if number == 7:
                for sub, _, item in _fields(value):
                    if sub == 1:
                        graph.node.append(_node(item))
                    elif sub == 5:
                        graph.initializer.append(_tensor(item))
    except (IndexError, struct.error) as exc:
        raise ValueError(f"not an ONNX model (truncated protobuf: {exc})") from exc
    if not graph.node:
        raise ValueError("not an ONNX model (no graph nodes)")
    return OnnxModel(graph)


def read_graph(path: str | Path) -> OnnxModel:
    return parse_model(Path(path).read_bytes())


def initializers(model: OnnxModel) -> dict[str, np.ndarray]:
    return {t.name: t.array for t in model.graph.initializer}


def graph_convs(model: OnnxModel) -> list[OnnxConv]:
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
        convs.append(
            OnnxConv(
                node=node.output[0],
                op=node.op_type,
                weight=inits[w_name],
                bias=inits[b_name] if b_name else None,
                attrs=node.attrs,
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
