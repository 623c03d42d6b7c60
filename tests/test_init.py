"""fastnn.ops.init_weights: the exact Philox draws against the float64 oracle, torch.nn.init's
scale formulas, moments and bounds at large size, determinism (same seed same bits, another
seed other bits), thread invariance, the out= form, and bad input.

Chunks are 2**16 elements: (300, 500) spans three chunks, run in parallel."""

import math

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import tol

RANDOM_KINDS = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal"]
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
           "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}
SHAPES = [(1, 1), (1, 7), (7, 1), (3, 5), (8, 9), (15, 16), (17, 31), (32, 33), (300, 500)]


# ------------------------------------------------------------------ exact draws
@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_float64_draws_match_oracle(threads, kind, rng):
    for shape in SHAPES:
        seed = int(rng.integers(0, 2**63)) * 2 + 1  # odd: the high key word is exercised too
        got = ops.init_weights(kind, shape, seed, dtype=np.float64)
        ref = oracle.init_weights(kind, shape, seed)
        assert got.dtype == np.float64 and got.shape == shape
        if kind.endswith("uniform"):
            # The same double operations in the same order: equal to the last bit.
            assert np.array_equal(got, ref), f"{kind} {shape}"
        else:
            np.testing.assert_allclose(got, ref, **tol("init_normal", np.float64))


@pytest.mark.parametrize("kind", RANDOM_KINDS + ["zeros", "ones"])
def test_float32_is_float64_rounded(kind, rng):
    seed = int(rng.integers(0, 2**32))
    for shape in SHAPES:
        w32 = ops.init_weights(kind, shape, seed)  # float32 by default
        w64 = ops.init_weights(kind, shape, seed, dtype=np.float64)
        assert w32.dtype == np.float32
        assert np.array_equal(w32, w64.astype(np.float32))


def test_constants():
    for shape in [(0,), (5,), (3, 4), (2, 3, 4), ()]:
        assert np.array_equal(ops.init_weights("zeros", shape, 0), np.zeros(shape, np.float32))
        assert np.array_equal(ops.init_weights("ones", shape, 0, dtype=np.float64), np.ones(shape))


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_torch_names_are_aliases(alias):
    assert np.array_equal(ops.init_weights(alias, (20, 30), 7),
                          ops.init_weights(ALIASES[alias], (20, 30), 7))


# ------------------------------------------------------------------ statistics
@pytest.mark.parametrize("kind", RANDOM_KINDS)
@pytest.mark.parametrize("gain", [None, 0.5])
def test_moments_and_bounds(kind, gain, rng):
    fan_in, fan_out = 700, 900
    w = ops.init_weights(kind, (fan_in, fan_out), int(rng.integers(0, 2**64, dtype=np.uint64)),
                         dtype=np.float64, gain=gain)
    n = w.size
    dist, scale = oracle.init_scale(kind, fan_in, fan_out, gain)
    std = scale / math.sqrt(3.0) if dist == "uniform" else scale
    # 6 standard errors: a correct kernel fails about once in 10**8 runs.
    assert abs(w.mean()) < 6 * std / math.sqrt(n)
    # The sample variance's standard error is std^2 sqrt((kurtosis - 1) / n).
    kurt = 1.8 if dist == "uniform" else 3.0
    assert abs(w.var() - std**2) < 6 * std**2 * math.sqrt((kurt - 1) / n)
    if dist == "uniform":
        assert np.all(np.abs(w) <= scale), "uniform draw outside [-a, a]"
        assert w.max() > scale * (1 - 1e-4) and w.min() < -scale * (1 - 1e-4)
        # Each tenth of the range holds a tenth of the draws.
        counts = np.histogram(w, bins=10, range=(-scale, scale))[0]
        assert np.all(np.abs(counts - n / 10) < 6 * math.sqrt(n / 10))
    else:
        # Normal shape: the fractions within 1 and 2 standard deviations.
        for k, p in ((1, 0.6826894921), (2, 0.9544997361)):
            frac = np.mean(np.abs(w) < k * std)
            assert abs(frac - p) < 6 * math.sqrt(p * (1 - p) / n)
        assert np.max(np.abs(w)) < 7 * std


def test_gain_scales_the_draw():
    base = ops.init_weights("he_normal", (40, 50), 3, dtype=np.float64, gain=1.0)
    assert np.array_equal(base, ops.init_weights("lecun_normal", (40, 50), 3, dtype=np.float64))
    np.testing.assert_allclose(ops.init_weights("he_normal", (40, 50), 3, dtype=np.float64),
                               math.sqrt(2.0) * base, rtol=1e-15)
    assert not np.any(ops.init_weights("glorot_uniform", (4, 5), 3, gain=0.0))


# ------------------------------------------------------------------ determinism
def test_seeds():
    a = ops.init_weights("glorot_uniform", (64, 64), 123)
    assert np.array_equal(a, ops.init_weights("glorot_uniform", (64, 64), 123))
    for other in (124, 123 + 2**32, 2**64 - 1, 0):
        b = ops.init_weights("glorot_uniform", (64, 64), other)
        assert np.mean(a == b) < 0.01, f"seed {other} draws the same as seed 123"


@pytest.mark.parametrize("kind", ["glorot_uniform", "he_normal"])
def test_thread_count_does_not_change_bits(kind):
    before = fastnn.get_num_threads()
    draws = []
    for t in (1, 2, 3):
        fastnn.set_num_threads(t)
        draws.append(ops.init_weights(kind, (300, 500), 99))
    fastnn.set_num_threads(before)
    assert np.array_equal(draws[0], draws[1]) and np.array_equal(draws[0], draws[2])


# ------------------------------------------------------------------ out=
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out(dtype):
    ref = ops.init_weights("he_uniform", (33, 17), 5, dtype=dtype)
    out = np.full((33, 17), np.nan, dtype)
    assert ops.init_weights("he_uniform", None, 5, out=out) is out
    assert np.array_equal(out, ref)
    out = np.full((33, 17), np.nan, dtype)
    ops.init_weights("he_uniform", (33, 17), 5, dtype=dtype, out=out)
    assert np.array_equal(out, ref)
    # A strided out gets the values a new array would have.
    for strided in (np.full((17, 33), np.nan, dtype).T, np.full((66, 17), np.nan, dtype)[::2]):
        assert ops.init_weights("he_uniform", None, 5, out=strided) is strided
        assert np.array_equal(strided, ref)


# ------------------------------------------------------------------ bad input
def test_bad_input():
    with pytest.raises(ValueError, match="kind: expected one of .*got 'uniform'"):
        ops.init_weights("uniform", (3, 4), 0)
    with pytest.raises(TypeError, match="kind: expected a string"):
        ops.init_weights(None, (3, 4), 0)
    with pytest.raises(ValueError, match=r"needs a 2-D weight shape .* got \(4,\)"):
        ops.init_weights("he_normal", (4,), 0)
    with pytest.raises(ValueError, match="needs a 2-D weight shape"):
        ops.init_weights("glorot_uniform", (2, 3, 4), 0)
    with pytest.raises(ValueError, match="shape: expected non-negative"):
        ops.init_weights("zeros", (-1, 3), 0)
    with pytest.raises(TypeError, match="shape: expected a tuple of ints"):
        ops.init_weights("zeros", (2.0, 3), 0)
    with pytest.raises(TypeError, match="seed: expected an int"):
        ops.init_weights("he_normal", (3, 4), 1.5)
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed: expected 0 <= seed < 2\\*\\*64"):
            ops.init_weights("he_normal", (3, 4), seed)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64"):
        ops.init_weights("he_normal", (3, 4), 0, dtype=np.int32)
    for gain in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gain: expected a finite number"):
            ops.init_weights("he_normal", (3, 4), 0, gain=gain)
    with pytest.raises(ValueError, match="gain: expected a number >= 0"):
        ops.init_weights("he_normal", (3, 4), 0, gain=-1.0)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4\)"):
        ops.init_weights("he_normal", (3, 4), 0, out=np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="out: expected float32 or float64"):
        ops.init_weights("he_normal", None, 0, out=np.zeros((4, 3), np.int64))
    with pytest.raises(TypeError, match="dtype: float64 does not match out's float32"):
        ops.init_weights("he_normal", None, 0, dtype=np.float64, out=np.zeros((4, 3), np.float32))
    ro = np.zeros((4, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: array is read-only"):
        ops.init_weights("he_normal", None, 0, out=ro)


def test_empty_weights():
    assert ops.init_weights("he_normal", (0, 5), 1).shape == (0, 5)
    assert ops.init_weights("glorot_uniform", (5, 0), 1).shape == (5, 0)
