"""Sequential.export_onnx: the file, run in ONNX Runtime, gives predict's outputs for every layer,
activation, output link and dtype, at any batch size."""

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn.layers import BatchNorm, Dense, Dropout
from export_models import ENDINGS, HIDDEN_ACTIVATIONS, assert_close, inputs, random_model

onnx = pytest.importorskip("onnx", reason="export_onnx needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the exported files are run in onnxruntime")


def run_onnx(path, X):
    """The file's outputs for X: ONNX Runtime, or ONNX's reference evaluator for the one op
    ONNX Runtime has no float64 kernel for (Erf, in gelu)."""
    model = onnx.load(str(path))
    if X.dtype == np.float64 and any(n.op_type == "Erf" for n in model.graph.node):
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, {"input": X})[0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


def check_export(model, X, tmp_path):
    path = tmp_path / "model.onnx"
    model.export_onnx(path)
    got, want = run_onnx(path, X), model.predict(X)
    if X.dtype == np.float64 and "gelu" in str(model.layers):
        # The reference evaluator's Erf rounds to float32 (onnx/reference/ops/op_erf.py).
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    else:
        assert_close(got, want)
    return onnx.load(str(path))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_every_activation_matches_predict(rng, tmp_path, activation, dtype):
    model = random_model(rng, activation, ("softmax_cross_entropy", "linear"), dtype)
    check_export(model, inputs(rng, model), tmp_path)


@pytest.mark.parametrize("ending", ENDINGS, ids=lambda e: f"{e[0]}-{e[1]}")
def test_output_link_is_predicts(rng, tmp_path, ending):
    model = random_model(rng, "relu", ending)
    proto = check_export(model, inputs(rng, model), tmp_path)
    ops = [n.op_type for n in proto.graph.node]
    # The link appears once: never both in the last layer and after it.
    assert ops.count("Softmax") + ops.count("Sigmoid") == int(
        ending[1] in ("softmax", "sigmoid") or ending[0] in ("softmax_cross_entropy",
                                                             "binary_cross_entropy"))


def test_sampled_softmax_model_exports_the_full_softmax(rng, tmp_path):
    model = random_model(rng, "relu")
    model.compile(fastnn.losses.SampledSoftmax(num_sampled=1))
    proto = check_export(model, inputs(rng, model), tmp_path)
    assert proto.graph.node[-1].op_type == "Softmax"


def test_file_layout(rng, tmp_path):
    model = random_model(rng, "relu", ("softmax_cross_entropy", "linear"))
    proto = check_export(model, inputs(rng, model), tmp_path)
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    batch, features = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param == "batch" and features.dim_value == model.input_dim
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == model.output_dim
    # Initializers carry the state-dict names; Dropout leaves no node.
    names = {t.name for t in graph.initializer}
    assert {"dense_0.weight", "dense_0.bias", "batch_norm_0.running_var"} <= names
    assert "Dropout" not in [n.op_type for n in graph.node]
    assert proto.opset_import[0].version == 17


def test_dynamic_batch(rng, tmp_path):
    model = random_model(rng, "tanh", ("binary_cross_entropy", "linear"))
    path = tmp_path / "m.onnx"
    model.export_onnx(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for rows in (1, 2, 33, 1025):
        X = inputs(rng, model, rows)
        assert_close(session.run(None, {"input": X})[0], model.predict(X))


@settings(max_examples=25, deadline=None)
@given(input_dim=st.integers(1, 6), units=st.integers(1, 5), outputs=st.integers(1, 4),
       activation=st.sampled_from(HIDDEN_ACTIVATIONS), ending=st.sampled_from(ENDINGS),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**31))
def test_sizes_sweep(tmp_path_factory, input_dim, units, outputs, activation, ending, dtype,
                     seed):
    rng = np.random.default_rng(seed)
    if ending[1] == "softmax" or ending[0] == "softmax_cross_entropy":
        outputs = max(outputs, 2)
    model = random_model(rng, activation, ending, dtype, input_dim, units, outputs)
    check_export(model, inputs(rng, model, rows=int(rng.integers(1, 9))),
                 tmp_path_factory.mktemp("sweep"))


def test_one_feature_one_unit_and_dropout_only(rng, tmp_path):
    model = fastnn.Sequential([Dense(1, "sigmoid")], input_dim=1)
    check_export(model, inputs(rng, model), tmp_path)
    model = fastnn.Sequential([Dropout(0.5)], input_dim=3)
    check_export(model, inputs(rng, model), tmp_path)
    model = fastnn.Sequential([BatchNorm()], input_dim=2, dtype="float64")
    check_export(model, inputs(rng, model), tmp_path)


def test_trained_model(rng, tmp_path):
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = (X[:, 0] > X[:, 1]).astype(np.int64)
    model = fastnn.Sequential([Dense(8, "gelu"), BatchNorm(), Dropout(0.2), Dense(2)],
                              input_dim=5)
    model.compile("softmax_cross_entropy").fit(X, y, epochs=3, verbose=0)
    check_export(model, X, tmp_path)


def test_extreme_inputs_stay_finite(tmp_path):
    model = fastnn.Sequential([Dense(3, "softplus"), Dense(2, "elu")], input_dim=2,
                              dtype="float64")
    model.set_weights([np.eye(2, 3), np.zeros(3), np.ones((3, 2)), np.zeros(2)])
    X = np.array([[-800.0, 800.0], [700.0, -700.0], [0.0, 1e-300]])
    got = run_onnx(_export(model, tmp_path), X)
    assert np.isfinite(got).all()
    assert_close(got, model.predict(X))


def _export(model, tmp_path):
    path = tmp_path / "m.onnx"
    model.export_onnx(path)
    return path


def test_bad_path(rng):
    model = fastnn.Sequential([Dense(2)], input_dim=2)
    with pytest.raises(TypeError, match="path: expected a file path"):
        model.export_onnx(3)


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = fastnn.Sequential([Dense(2)], input_dim=2)
    with pytest.raises(ImportError, match=r"export_onnx needs the 'onnx' package.*fastnn\[onnx\]"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_gelu_constant_is_exact(rng, tmp_path):
    model = fastnn.Sequential([Dense(2, "gelu")], input_dim=2, dtype="float64")
    proto = check_export(model, inputs(rng, model), tmp_path)
    sqrt2 = [t for t in proto.graph.initializer if t.name.endswith(".sqrt2")][0]
    assert onnx.numpy_helper.to_array(sqrt2) == math.sqrt(2.0)
