"""The ONNX reader (`videobg.models.onnx_weights`) against the `onnx` package, which the loader no longer
imports (start-up time) but the tests still may: same nodes, attributes and initializers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from videobg.models.onnx_weights import OnnxModel, graph_convs, parse_model
from videobg.models.weights import WEIGHTS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _model_dir() -> Path:
    if os.environ.get("VIDEOBG_MODEL_DIR"):
        return Path(os.environ["VIDEOBG_MODEL_DIR"])
    local = REPO / "models"
    return local if (local / WEIGHTS["human"].file).is_file() else REPO.parent / "shared" / "models"


def _same(ours: OnnxModel, ref: onnx.ModelProto) -> None:
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in ref.graph.node]
    assert [n.input for n in ours.graph.node] == [list(n.input) for n in ref.graph.node]
    assert [n.output for n in ours.graph.node] == [list(n.output) for n in ref.graph.node]
    for mine, theirs in zip(ours.graph.node, ref.graph.node, strict=True):
        want = {a.name: helper.get_attribute_value(a) for a in theirs.attribute}
        assert set(mine.attrs) == set(want), theirs.output[0]
        for key, value in want.items():
            got = mine.attrs[key]
            if isinstance(value, TensorProto):
                value = numpy_helper.to_array(value)
                assert got.dtype == value.dtype and np.array_equal(got, value), key
            elif isinstance(value, float):
                assert got == pytest.approx(value, rel=1e-7), key
            else:
                assert got == value, key
    want_init = {t.name: numpy_helper.to_array(t) for t in ref.graph.initializer}
    got_init = {t.name: t.array for t in ours.graph.initializer}
    assert got_init.keys() == want_init.keys()
    for name, value in want_init.items():
        assert got_init[name].dtype == value.dtype, name
        assert got_init[name].shape == value.shape, name
        assert np.array_equal(got_init[name], value), name


def test_every_encoding_the_reader_meets():
    """Raw and typed tensor data (float, int64, int32), negative ints, float/int/string/tensor/list
    attributes, a scalar tensor: what onnx.helper writes, read back as onnx reads it."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "w"),  # raw_data
        helper.make_tensor("b", TensorProto.FLOAT, [4], [0.5, -1.25, 3.0, 1e-8]),  # float_data
        helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 0, 1 << 40]),  # int64_data
        helper.make_tensor("i32", TensorProto.INT32, [2], [7, -7]),
        numpy_helper.from_array(np.array(2.5, np.float32), "scalar"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=1),
        helper.make_node("LeakyRelu", ["y"], ["z"], alpha=0.125),
        helper.make_node(
            "Resize", ["z", "", "shape"], ["r"], mode="linear", coordinate_transformation_mode="a"
        ),
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.arange(6, dtype=np.int64))),
        helper.make_node("Custom", ["r"], ["out"], floats=[1.5, -2.0], ints=[-3, 4], strings=[b"p", b"q"]),
    ]
    graph = helper.make_graph(nodes, "g", [], [], initializer=inits)
    ref = helper.make_model(graph)
    ours = parse_model(ref.SerializeToString())
    _same(ours, ref)
    conv = graph_convs(ours)
    assert len(conv) == 1 and np.array_equal(conv[0].weight, weight)
    assert conv[0].attrs["kernel_shape"] == [3, 3] and conv[0].attrs["group"] == 1


@pytest.mark.parametrize("name", ["human", "light", "original"])
def test_installed_weights_read_as_onnx_reads_them(name):
    path = _model_dir() / WEIGHTS[name].file
    if not path.is_file():
        pytest.skip(f"{path} absent (run scripts/setup_models.py or set VIDEOBG_MODEL_DIR)")
    data = path.read_bytes()
    _same(parse_model(data), onnx.load_from_string(data))


@pytest.mark.parametrize("data", [b"", b"\x08", b"\x3a\xff\xff\xff\xff\x0f", b"not a model at all"])
def test_garbage_is_a_value_error(data):
    with pytest.raises(ValueError):
        parse_model(data)
