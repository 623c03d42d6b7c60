"""Sequential.to_torch and fastnn.from_torch: the same outputs as predict, the same weights both
ways, PyTorch stacks built by hand, and clear errors for what has no fastnn equivalent."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from export_models import ENDINGS, HIDDEN_ACTIVATIONS, assert_close, inputs, random_model

torch = pytest.importorskip("torch", reason="to_torch / from_torch need PyTorch")
nn = torch.nn
TORCH_ACTIVATIONS = [a for a in HIDDEN_ACTIVATIONS if a != "step"]  # step: no torch module


def torch_out(module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                      for x, y in zip(wa, wb))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", TORCH_ACTIVATIONS)
def test_to_torch_matches_predict_and_round_trips(rng, activation, dtype):
    model = random_model(rng, activation, ("softmax_cross_entropy", "linear"), dtype)
    module = model.to_torch()
    X = inputs(rng, model)
    assert not module.training
    assert_close(torch_out(module, X), model.predict(X))
    back = fastnn.from_torch(module)
    assert back.dtype == model.dtype and same_weights(back, model)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


@pytest.mark.parametrize("ending", ENDINGS, ids=lambda e: f"{e[0]}-{e[1]}")
def test_output_link(rng, ending):
    model = random_model(rng, "elu", ending)
    module = model.to_torch()
    X = inputs(rng, model)
    assert_close(torch_out(module, X), model.predict(X))
    np.testing.assert_array_equal(fastnn.from_torch(module).predict(X), model.predict(X))


def test_names_and_layout(rng):
    model = random_model(rng, "leaky_relu", ("binary_cross_entropy", "linear"))
    module = model.to_torch()
    names = [name for name, _ in module.named_children()]
    assert names == ["dense_0", "dense_0_leaky_relu", "batch_norm_0", "dropout_0",
                     "activation_0", "dense_1", "link_sigmoid"]
    state = module.state_dict()
    W = model.get_weights()[0]
    np.testing.assert_array_equal(state["dense_0.weight"].numpy(), W.T)
    assert module.dense_0_leaky_relu.negative_slope == pytest.approx(0.3)
    assert module.activation_0.negative_slope == pytest.approx(-0.2)
    assert module.batch_norm_0.eps == pytest.approx(1e-3)
    assert module.dropout_0.p == 0.25
    assert "dense_1.bias" in state  # outputs=3: with bias


@settings(max_examples=25, deadline=None)
@given(input_dim=st.integers(1, 6), units=st.integers(1, 5), outputs=st.integers(1, 4),
       activation=st.sampled_from(TORCH_ACTIVATIONS), ending=st.sampled_from(ENDINGS),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**31))
def test_sizes_sweep(input_dim, units, outputs, activation, ending, dtype, seed):
    rng = np.random.default_rng(seed)
    if ending[1] == "softmax" or ending[0] == "softmax_cross_entropy":
        outputs = max(outputs, 2)
    model = random_model(rng, activation, ending, dtype, input_dim, units, outputs)
    X = inputs(rng, model, rows=int(rng.integers(1, 9)))
    module = model.to_torch()
    assert_close(torch_out(module, X), model.predict(X))
    back = fastnn.from_torch(module)
    assert same_weights(back, model)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_step_has_no_torch_module():
    model = fastnn.Sequential([Dense(2, "step")], input_dim=2)
    with pytest.raises(ValueError, match="'step' activation has no PyTorch module"):
        model.to_torch()


def _stack(dtype=torch.float32):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Dropout(0.1),
        nn.Sequential(nn.Linear(6, 5, bias=False), nn.LeakyReLU(0.2)), nn.Identity(),
        nn.Linear(5, 5), nn.Tanh(), nn.Sigmoid(), nn.Linear(5, 4), nn.GELU(), nn.Linear(4, 4),
        nn.ELU(0.5), nn.Linear(4, 3), nn.Softplus(), nn.BatchNorm1d(3, affine=False),
        nn.Linear(3, 3), nn.Softmax(dim=1)).to(dtype)
    # Running statistics as training leaves them, not the initial zeros and ones.
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(16, 4, dtype=dtype) * 2)
    return module.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_from_torch_hand_built_stack(rng, dtype):
    module = _stack(dtype)
    model = fastnn.from_torch(module)
    assert [layer.summary_type() for layer in model.layers] == [
        "Dense(relu)", "BatchNorm", "Dropout", "Dense(leaky_relu)", "Dense(tanh)", "Activation",
        "Dense(gelu)", "Dense(elu)", "Dense(softplus)", "BatchNorm", "Dense(softmax)"]
    assert model.layers[3].use_bias is False and model.layers[3].negative_slope == pytest.approx(0.2)
    assert model.loss is None and model.input_dim == 4
    X = inputs(rng, model, rows=9)
    assert_close(model.predict(X), torch_out(module, X))
    # And back: the same module's outputs again.
    assert_close(torch_out(model.to_torch(), X), torch_out(module, X))


def test_from_torch_single_module_and_compile_after(rng):
    linear = nn.Linear(3, 1)
    model = fastnn.from_torch(linear)
    X = inputs(rng, model)
    assert_close(model.predict(X), torch_out(linear, X))
    model.compile("mse")
    model.fit(X, X[:, :1], epochs=1, verbose=0)


@pytest.mark.parametrize("module, message", [
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.SiLU()), "SiLU is not supported"),
    (lambda: nn.Sequential(nn.Conv1d(1, 1, 1)), "Conv1d is not supported"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Linear(2, 3)), "takes 2 features, the modules "
                                                               "before it give 3"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=1), nn.Linear(2, 2)),
     "Softmax is only supported as the last"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)), r"Softmax\(dim=0\)"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.GELU(approximate="tanh")), "approximate='tanh'"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2)), "Softplus"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Softplus(threshold=5)), "threshold"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.ELU(alpha=-1.0)), "alpha >= 0"),
    (lambda: nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)), "running statistics"),
    (lambda: nn.Sequential(nn.BatchNorm1d(2, momentum=None)), "momentum=None"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Dropout(1.0)), r"module 1: Dropout: rate"),
    (lambda: nn.Sequential(nn.ReLU(), nn.Dropout(0.1)), "first Linear or BatchNorm1d"),
    (lambda: nn.Sequential(), "first Linear or BatchNorm1d"),
    (lambda: nn.Sequential(nn.Linear(2, 2).half()), "all float32 or all float64"),
    (lambda: nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double()), "all float32 or all"),
    (lambda: nn.Sequential(nn.ModuleList([nn.Linear(2, 2)])), "ModuleList is not supported"),
])
def test_from_torch_refuses_what_it_cannot_compute(module, message):
    with pytest.raises(ValueError, match=message):
        fastnn.from_torch(module())


def test_from_torch_refuses_subclasses_and_non_modules():
    class MyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ValueError, match="MyLinear is not supported"):
        fastnn.from_torch(nn.Sequential(MyLinear(2, 2)))
    with pytest.raises(TypeError, match="module: expected a torch.nn.Module"):
        fastnn.from_torch([nn.Linear(2, 2)])


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    model = fastnn.Sequential([Dense(2)], input_dim=2)
    with pytest.raises(ImportError, match=r"to_torch needs the 'torch' package.*fastnn\[torch\]"):
        model.to_torch()
    with pytest.raises(ImportError, match="from_torch needs the 'torch' package"):
        fastnn.from_torch(object())


def test_identity_layers_add_no_module():
    # Activation("linear") and a linear Dense add no module: nothing that computes the identity.
    model = fastnn.Sequential([Dense(3), Activation("linear"), Dropout(0.0), BatchNorm()],
                              input_dim=2)
    assert [n for n, _ in model.to_torch().named_children()] == ["dense_0", "dropout_0",
                                                                 "batch_norm_0"]
