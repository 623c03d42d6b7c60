"""The comparison helper itself (tests/check.py) must fail where a kernel is wrong: an element
left unwritten, a value off by more than the table allows, an out= not returned."""

import numpy as np
import pytest

from check import assert_close, assert_max_close, assert_norm_close, check_op, tol

SHAPES = [(1,), (7,), (33,)]


def _inputs(shape, dtype):
    return (np.linspace(-2, 2, int(np.prod(shape))).reshape(shape).astype(dtype),)


def _relu_into(x, out):
    np.maximum(x, 0, out=out)
    return out


def _relu(x):
    return np.maximum(x.astype(np.float64), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_op_passes_a_right_kernel(dtype):
    check_op(_relu_into, _relu, SHAPES, dtype, inputs=_inputs, outputs=lambda s: [s],
             kind="elementwise")


def test_check_op_catches_an_unwritten_element():
    def skips_last(x, out):
        out[:-1] = np.maximum(x[:-1], 0)
        return out

    with pytest.raises(AssertionError, match="NaN"):
        check_op(skips_last, _relu, SHAPES, np.float32, inputs=_inputs, outputs=lambda s: [s],
                 kind="elementwise")
    with pytest.raises(AssertionError, match="unwritten"):
        check_op(skips_last, _relu, SHAPES, np.float32, inputs=_inputs, outputs=lambda s: [s],
                 kind="gemm")


def test_check_op_catches_a_value_off_by_more_than_the_table():
    off = 3 * tol("elementwise", np.float32)

    def biased(x, out):
        out[...] = np.maximum(x, 0) * np.float32(1 + off) + np.float32(off)
        return out

    with pytest.raises(AssertionError, match="elements off"):
        check_op(biased, _relu, SHAPES, np.float32, inputs=_inputs, outputs=lambda s: [s],
                 kind="elementwise")


def test_check_op_catches_a_fresh_array_in_place_of_out():
    with pytest.raises(AssertionError, match="out= not returned"):
        check_op(lambda x, out: np.maximum(x, 0), _relu, SHAPES, np.float32, inputs=_inputs,
                 outputs=lambda s: [s], kind="elementwise")


def test_comparisons_fail_outside_their_bound():
    ref = np.ones(10)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones(9), ref, 1e-6, 0.0, "shape")
    with pytest.raises(AssertionError, match="Frobenius"):
        assert_norm_close(ref * (1 + 1e-3), ref, 1e-4, "norm")
    with pytest.raises(AssertionError, match="max error"):
        assert_max_close(ref + 1e-3, ref, 1e-4, "max")
    assert_norm_close(ref * (1 + 1e-6), ref, 1e-4, "norm")
    assert_max_close(ref + 1e-6, ref, 1e-4, "max")
