"""The bad-input probe: every public function called with one argument replaced by a bad value.

A case is (target, argument, value), all three names. Run as a script, this reads a JSON list
of cases on stdin and prints one JSON line per case, announcing each before running it, so
that when the process dies (a crash) the parent knows which case killed it. The test
(test_bad_inputs.py) runs batches of cases in such subprocesses.

A case passes when the call either raises TypeError / ValueError / MemoryError (or a subclass)
with a message, or returns, the latter only if the value is valid for the argument's kind:
a non-boolean for a flag, 2.0 for a count or NaN for a hyper-parameter must be refused."""

import json
import math
import sys
import warnings

import numpy as np

# Argument kinds (several letters: any of them): b bool, i int, n an int that sizes the work
# (not tried with 2**70: that is a valid request for a very long run), f real number, s a name
# from a list, a array or number (NaN allowed: kernels propagate it), d data (NaN refused),
# m a mapping, x anything a splitter can index (its values are not read); a trailing "?" means
# None is allowed too.
# Values: name -> (factory of the bad value from the argument's valid one, kinds it is valid for).
_R = np.random.default_rng(0)


def _misaligned(a):
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    return buf[1:].view(a.dtype).reshape(a.shape) if a.itemsize > 1 and a.ndim else a


def _with(a, value):
    a = np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind not in "fc" else None)
    if a.size:
        a.flat[0] = value
    return a


VALUES = {
    "none": (lambda v: None, "?"),
    "true": (lambda v: True, "b"),
    "false": (lambda v: False, "b"),
    "np_bool": (lambda v: np.bool_(True), "b"),
    "word": (lambda v: "no", "s"),
    "zero": (lambda v: 0, "ifl"),
    "minus_one": (lambda v: -1, "if"),
    "huge_int": (lambda v: 2**70, "if"),
    "np_int": (lambda v: np.int64(3), "ifl"),
    "one_and_half": (lambda v: 1.5, "fa"),
    "two_float": (lambda v: 2.0, "fa"),
    "np_float": (lambda v: np.float32(0.5), "fa"),
    "nan": (lambda v: math.nan, "a"),
    "inf": (lambda v: math.inf, "a"),
    "complex": (lambda v: 1 + 2j, ""),
    "empty_list": (lambda v: [], "adx"),
    "dict": (lambda v: {}, "m"),
    "object": (lambda v: object(), ""),
    "complex_array": (lambda v: np.asarray(v) + 1j, "x"),
    "object_array": (lambda v: np.asarray(v).astype(object), "x"),
    "string_array": (lambda v: np.asarray(v).astype(str), "x"),
    "nan_array": (lambda v: _with(v, math.nan), "ax"),
    "inf_array": (lambda v: _with(v, math.inf), "ax"),
    "float16_array": (lambda v: np.asarray(v).astype(np.float16), "adx"),
    "int_array": (lambda v: np.asarray(v).astype(np.int64), "adx"),
    "empty_array": (lambda v: np.asarray(v)[:0], "adx"),
    "extra_axis": (lambda v: np.asarray(v)[None], "adx"),
    "scalar_array": (lambda v: np.array(1.0), "adx"),
    "transposed": (lambda v: np.asarray(v).T, "adx"),
    "misaligned": (lambda v: _misaligned(v), "adx"),
}


def _f32(*shape):
    return _R.standard_normal(shape).astype(np.float32)


def _model(compiled=True, loss="softmax_cross_entropy"):
    import fastnn

    m = fastnn.Sequential([fastnn.layers.Dense(4, "relu"), fastnn.layers.Dense(3)], input_dim=5)
    return m.compile(loss, "sgd") if compiled else m


def _targets():
    """name -> (function taking the keyword arguments, valid arguments, {argument: kind})."""
    import fastnn
    from fastnn import callbacks, data, layers, model_selection, ops, optim, schedules

    X, Y = _f32(12, 5), np.arange(12) % 3
    x, w, b = _f32(6, 5), _f32(5, 3), _f32(3)
    p, g = _f32(7), _f32(7)
    t = {}

    def add(_target, _fn, _kinds, **valid):
        t[_target] = (_fn, valid, dict(k.split(":") for k in _kinds.split()))

    add("ops.matmul", ops.matmul, "a:a b:a trans_a:b trans_b:b alpha:f beta:f", a=x, b=w)
    add("ops.linear", ops.linear, "x:a w:a b:a? activation:s? negative_slope:f "
        "return_preactivation:b", x=x, w=w, b=b)
    add("ops.linear_grad", ops.linear_grad, "dy:a x:a w:a activation:s? z:a? need_dx:b "
        "accumulate:b", dy=_f32(6, 3), x=x, w=w, activation="tanh", z=_f32(6, 3))
    for act in ("relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step", "softmax",
                "log_softmax"):
        add(f"ops.{act}", getattr(ops, act), "x:a", x=x)
    add("ops.leaky_relu", ops.leaky_relu, "x:a negative_slope:f", x=x)
    add("ops.activation_grad", ops.activation_grad, "name:s? dy:a x:a", name="relu", dy=x, x=x)
    add("ops.softmax_cross_entropy", ops.softmax_cross_entropy,
        "logits:a labels:a class_weight:a? label_smoothing:f",
        logits=_f32(6, 3), labels=np.arange(6) % 3)
    for loss in ("binary_cross_entropy_with_logits", "mse", "mae"):
        add(f"ops.{loss}", getattr(ops, loss), f"{'logits' if 'binary' in loss else 'pred'}:a "
            f"{'targets' if 'binary' in loss else 'target'}:a",
            **{"logits" if "binary" in loss else "pred": _f32(6, 3),
               "targets" if "binary" in loss else "target": np.abs(_f32(6, 3)) % 1})
    add("ops.dropout", ops.dropout, "x:a rate:f seed:i", x=x, rate=0.5, seed=1)
    add("ops.dropout_grad", ops.dropout_grad, "dy:a mask:a rate:f", dy=x,
        mask=(x > 0).astype(np.uint8), rate=0.5)
    add("ops.init_weights", ops.init_weights, "kind:s seed:i gain:f?", kind="glorot_uniform",
        shape=(4, 3), seed=0)
    add("ops.batch_norm", ops.batch_norm, "x:a gamma:a? beta:a? training:b momentum:f eps:f",
        x=x, gamma=None, beta=None, running_mean=None, running_var=None)
    add("ops.batch_norm_grad", ops.batch_norm_grad, "dy:a x:a save_mean:a save_invstd:a",
        dy=x, x=x, gamma=None, save_mean=_f32(5), save_invstd=np.abs(_f32(5)))
    for red in ("sum_rows", "mean_rows", "argmax_rows"):
        add(f"ops.{red}", getattr(ops, red), "x:a", x=x)
    add("ops.count_correct", ops.count_correct, "scores:a labels:a", scores=x,
        labels=np.arange(6) % 5)
    add("ops.top_k_correct", ops.top_k_correct, "scores:a labels:a k:i", scores=x,
        labels=np.arange(6) % 5, k=2)
    add("ops.binary_correct", ops.binary_correct, "logits:a targets:a threshold:f", logits=x,
        targets=(x > 0).astype(np.float32))
    add("ops.sgd_step", ops.sgd_step, "lr:f momentum:f nesterov:b weight_decay:f",
        params=[p.copy()], grads=[g], lr=0.1)
    add("ops.adam_step", ops.adam_step, "step:i lr:f eps:f amsgrad:b", params=[p.copy()],
        grads=[g], exp_avgs=[np.zeros(7, np.float32)], exp_avg_sqs=[np.zeros(7, np.float32)],
        step=1)
    add("ops.global_norm", ops.global_norm, "tensors:a", tensors=[g])
    add("ops.clip_grad_norm", ops.clip_grad_norm, "max_norm:f", grads=[g.copy()], max_norm=1.0)
    add("ops.sample_candidates", ops.sample_candidates, "num_sampled:i num_classes:n seed:i "
        "sampler:s unique:b", num_sampled=4, num_classes=20, seed=0)
    add("ops.sampled_softmax_cross_entropy", ops.sampled_softmax_cross_entropy,
        "h:a W:a b:a? labels:a num_sampled:i seed:i unique:b subtract_log_q:b",
        h=x, W=_f32(5, 20), b=None, labels=np.arange(6), num_sampled=4, seed=0)

    add("Sequential", fastnn.Sequential, "input_dim:i seed:i device:s precision:s "
        "fused_mlp:b graphs:b", layers=[layers.Dense(3)], input_dim=5)
    add("Sequential.compile", lambda **k: _model(False).compile(**k),
        "loss:s metrics:sx clipnorm:f?", loss="mse", optimizer="sgd")
    fit_kinds = ("X:d y:d epochs:n batch_size:i? shuffle:b validation_split:f? "
                 "class_weight:am? accumulate_steps:i verbose:bi initial_epoch:i "
                 "sample_weight:d?")
    add("Sequential.fit", lambda **k: _model().fit(**k), fit_kinds, X=X, y=Y, verbose=0)
    add("Sequential.fit(mse)", lambda **k: _model(loss="mse").fit(**k), fit_kinds, X=X,
        y=_f32(12, 3), verbose=0)
    add("Sequential.evaluate", lambda **k: _model().evaluate(**k),
        "X:d y:d batch_size:i verbose:bi sample_weight:d?", X=X, y=Y)
    add("Sequential.evaluate(mse)", lambda **k: _model(loss="mse").evaluate(**k), "X:d y:d",
        X=X, y=_f32(12, 3))
    add("Sequential.predict", lambda **k: _model().predict(**k), "X:d batch_size:i", X=X)
    add("Sequential.predict(uncompiled)", lambda **k: _model(False).predict(**k), "X:d", X=X)
    ws = _model(False).get_weights()
    add("Sequential.set_weights", lambda weights: _model().set_weights(weights), "weights:a",
        weights=ws)
    add("Sequential.set_weights[0]", lambda w0: _model().set_weights([w0] + ws[1:]), "w0:d",
        w0=ws[0])

    add("layers.Dense", layers.Dense, "units:i activation:s? l1:f l2:f kernel_initializer:s "
        "use_bias:b negative_slope:f alpha:f", units=3)
    add("layers.Activation", layers.Activation, "activation:s? negative_slope:f alpha:f",
        activation="relu")
    add("layers.Dropout", layers.Dropout, "rate:f", rate=0.5)
    add("layers.BatchNorm", layers.BatchNorm, "momentum:f eps:f")

    add("optim.SGD", optim.SGD, "lr:f momentum:f nesterov:b weight_decay:f dampening:f", lr=0.1)
    add("optim.Adam", optim.Adam, "lr:f betas:a eps:f weight_decay:f amsgrad:b")
    add("optim.AdamW", optim.AdamW, "lr:f eps:f weight_decay:f amsgrad:b")
    add("optim.Adagrad", optim.Adagrad, "lr:f eps:f weight_decay:f lr_decay:f "
        "initial_accumulator_value:f")
    add("optim.RMSprop", optim.RMSprop, "lr:f alpha:f eps:f momentum:f weight_decay:f "
        "centered:b")
    add("schedules.StepLR", schedules.StepLR, "step_size:i gamma:f per:s", step_size=2)
    add("schedules.ExponentialLR", schedules.ExponentialLR, "gamma:f per:s", gamma=0.9)
    add("schedules.InverseScaling", schedules.InverseScaling, "power:f per:s")
    add("schedules.CosineAnnealing", schedules.CosineAnnealing, "T_max:i eta_min:f per:s",
        T_max=5)
    add("schedules.Warmup", schedules.Warmup, "warmup_steps:i per:s", warmup_steps=3)
    add("callbacks.EarlyStopping", callbacks.EarlyStopping, "monitor:s min_delta:f patience:i "
        "verbose:bi mode:s baseline:f? restore_best_weights:b start_from_epoch:i")
    add("callbacks.ReduceLROnPlateau", callbacks.ReduceLROnPlateau, "monitor:s factor:f "
        "patience:i verbose:bi mode:s min_delta:f cooldown:i min_lr:f")
    add("callbacks.LearningRateScheduler", callbacks.LearningRateScheduler, "verbose:bi",
        schedule=lambda epoch, lr: lr)
    add("data.one_hot", data.one_hot, "labels:dl num_classes:i?", labels=Y)
    add("data.train_test_split", data.train_test_split, "X:x y:x? test_size:f seed:i? "
        "stratify:b shuffle:b", X=X, y=Y)
    add("data.train_val_test_split", data.train_val_test_split, "X:x y:x? val_size:f "
        "test_size:f seed:i? stratify:b shuffle:b", X=X, y=Y, val_size=0.2, test_size=0.2)
    add("data.batches", lambda **k: list(data.batches(**k)), "n:n batch_size:i? shuffle:b seed:i?",
        n=10)
    add("data.validate_xy", data.validate_xy, "X:d y:d?", X=X, y=Y)
    add("data.split_validation", data.split_validation, "X:x y:x? fraction:f", X=X, y=Y)
    add("model_selection.KFold", lambda **k: list(model_selection.KFold(
        **{a: k.pop(a) for a in ("n_splits", "shuffle", "seed") if a in k}).split(**k)),
        "n_splits:i shuffle:b seed:i? X:x", X=X)
    add("model_selection.StratifiedKFold", lambda **k: list(model_selection.StratifiedKFold(
        **{a: k.pop(a) for a in ("n_splits", "shuffle", "seed") if a in k}).split(**k)),
        "n_splits:i shuffle:b seed:i? X:x y:x", n_splits=3, X=X, y=Y)
    add("model_selection.cross_validate", model_selection.cross_validate, "X:d y:d k:n seed:i?",
        build_fn=lambda: _model(), X=X, y=Y, k=2, fit_kwargs={"verbose": 0})
    add("Perceptron", fastnn.Perceptron, "lr:f max_epochs:i seed:i")
    add("Perceptron.fit", lambda **k: fastnn.Perceptron(max_epochs=3).fit(**k), "X:d y:d",
        X=X, y=Y % 2)
    add("Perceptron.predict", lambda **k: fastnn.Perceptron(max_epochs=3).fit(X, Y % 2)
        .predict(**k), "X:d", X=X)
    return t


def all_cases(targets=None):
    targets = targets if targets is not None else _targets()
    return [(name, arg, value) for name, (_, _, kinds) in sorted(targets.items())
            for arg in kinds for value in VALUES]


def run_case(targets, name, arg, value_name):
    """'ok', or what went wrong."""
    fn, valid, kinds = targets[name]
    make, valid_for = VALUES[value_name]
    kwargs = dict(valid)
    try:
        kwargs[arg] = make(valid.get(arg, 1.0))
    except (TypeError, ValueError, IndexError):
        return "ok"  # this value has no form for this argument (an empty scalar, say)
    kind = kinds[arg]
    if kind.startswith("n"):
        if value_name == "huge_int":
            return "ok"
        kind = "i" + kind[1:]
    try:
        with warnings.catch_warnings():
            # Dropping an imaginary part is the silent coercion the probe looks for.
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            fn(**kwargs)
    except (TypeError, ValueError, MemoryError) as e:
        return "ok" if str(e) else f"{type(e).__name__} without a message"
    except Exception as e:  # noqa: BLE001 -- any other exception is what the probe reports
        return f"{type(e).__name__}: {e}"
    if any(k in valid_for for k in kind.rstrip("?")) or (kind.endswith("?") and "?" in valid_for):
        return "ok"
    return f"accepted silently ({kind} argument)"


def main():
    targets = _targets()
    for name, arg, value in json.load(sys.stdin):
        print(json.dumps([name, arg, value, None]), flush=True)  # a crash leaves this last
        print(json.dumps([name, arg, value, run_case(targets, name, arg, value)]), flush=True)


if __name__ == "__main__":
    main()
