"""ops.dropout / dropout_grad against the oracle's independent Philox, and its invariances."""

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (3,), (5, 7), (33, 17), (3, 4, 5), (31,), (64,), (97,),
                                   (300_001,)])
def test_dropout_matches_oracle(simd, dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    rate = float(rng.uniform(0.05, 0.9))
    y, mask = ops.dropout(x, rate, seed)
    ref_y, ref_mask = oracle.dropout(x, rate, seed)
    assert mask.dtype == np.uint8 and mask.shape == x.shape
    assert np.array_equal(mask, ref_mask)
    np.testing.assert_allclose(y, ref_y, rtol=tol("dropout", dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    dx = ops.dropout_grad(dy, mask, rate)
    np.testing.assert_allclose(dx, dy * ref_mask / (1 - rate), rtol=tol("dropout", dtype))


def test_dropout_rate_statistics(rng):
    x = np.ones(1_000_000, np.float32)
    for rate in (0.1, 0.5, 0.9):
        y, mask = ops.dropout(x, rate, seed=int(rng.integers(2**63)))
        kept = mask.mean()
        assert abs(kept - (1 - rate)) < 5e-3
        assert abs(y.mean() - 1.0) < 2e-2  # inverted dropout keeps the mean


def test_edge_rates(simd):
    x = np.arange(1, 11, dtype=np.float32)
    y, mask = ops.dropout(x, 0.0, seed=3)
    assert np.array_equal(y, x) and mask.all()
    y, mask = ops.dropout(x, 1.0, seed=3)
    assert not y.any() and not mask.any()


def test_same_seed_same_mask_any_thread_count():
    x = np.ones(500_000, np.float32)
    fastnn.set_num_threads(1)
    a = ops.dropout(x, 0.3, seed=42)[1]
    fastnn.set_num_threads(2)
    b = ops.dropout(x, 0.3, seed=42)[1]
    fastnn.set_num_threads(fastnn._C.hardware_threads())
    c = ops.dropout(x, 0.3, seed=43)[1]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noncontiguous_input(rng):
    x = rng.standard_normal((40, 30)).astype(np.float32)[::2, ::-3]
    y, mask = ops.dropout(x, 0.5, seed=9)
    ref_y, ref_mask = oracle.dropout(np.ascontiguousarray(x), 0.5, 9)
    assert np.array_equal(mask, ref_mask)
    np.testing.assert_allclose(y, ref_y, rtol=tol("dropout", np.float32))


def test_bad_input():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"rate: expected a probability in \[0, 1\], got 1.5"):
        ops.dropout(x, 1.5, 0)
    with pytest.raises(ValueError, match="rate: expected a finite number"):
        ops.dropout(x, float("nan"), 0)
    with pytest.raises(TypeError, match="seed: expected an int"):
        ops.dropout(x, 0.5, 1.5)
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(x, 0.5, -1)
    with pytest.raises(TypeError, match="x: expected float32 or float64"):
        ops.dropout(np.ones(4, np.int32), 0.5, 0)
    y, mask = ops.dropout(x, 0.5, 0)
    with pytest.raises(TypeError, match="mask: expected the uint8 mask"):
        ops.dropout_grad(x, mask.astype(bool), 0.5)
    with pytest.raises(ValueError, match=r"mask: expected shape \(4,\)"):
        ops.dropout_grad(x, mask[:2], 0.5)


def test_oracle_philox_known_answers():
    # Random123's published Philox 4x32-10 known-answer vectors: the oracle (and through the
    # mask tests, the kernel) is the standard generator, not merely self-consistent.
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for counter, key, expected in cases:
        got = oracle.philox4x32_10(np.array([counter], np.uint64), key)[0]
        assert tuple(int(v) for v in got) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_into_given_arrays(dtype, rng):
    x = rng.standard_normal(1001).astype(dtype)
    y_ref, m_ref = ops.dropout(x, 0.3, 11)
    out = np.full_like(x, np.nan)
    mask = np.full(x.shape, 7, np.uint8)
    got = ops.dropout(x, 0.3, 11, out=out, mask=mask)
    assert got[0] is out and got[1] is mask
    assert np.array_equal(out, y_ref) and np.array_equal(mask, m_ref)
    xi = x.copy()
    ops.dropout(xi, 0.3, 11, out=xi, mask=mask)  # in place
    assert np.array_equal(xi, y_ref)
    with pytest.raises(ValueError, match="both arrays"):
        ops.dropout(x, 0.3, 11, out=out)
    with pytest.raises(TypeError, match="mask: expected dtype uint8"):
        ops.dropout(x, 0.3, 11, out=out, mask=np.zeros(x.shape, np.int8))
    with pytest.raises(ValueError, match="out: expected shape"):
        ops.dropout(x, 0.3, 11, out=out[:-1], mask=mask)
