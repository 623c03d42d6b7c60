"""The CUDA dropout against the CPU kernel bit for bit (the same Philox mask, the same scaled
values) and against the oracle's mask, through fastnn.ops on CUDA tensors, on data on and off
the 16-byte grid."""

import numpy as np
import pytest

import oracle
from fastnn import _C, ops
from gpu import dev, host, misaligned, needs_gpu, poisoned_dev

pytestmark = needs_gpu

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 4, 5, 17, 1000, 300_001])
@pytest.mark.parametrize("aligned", [True, False])
def test_dropout_matches_cpu_bit_for_bit(dtype, n, aligned, rng):
    x = rng.standard_normal(n).astype(dtype)
    x[0] = np.inf  # a dropped inf gives 0, not NaN
    for seed, rate in [(0, 0.5), (int(rng.integers(0, 2**63)) * 2 + 1, float(rng.uniform(0.05, 0.9))),
                       (2**40 + 7, 0.0), (123, 1.0), (5, 1e-9)]:
        mask0 = np.full(n, 7, np.uint8)
        if aligned:
            xd, yd, md = dev(x), poisoned_dev(n, dtype), dev(mask0)
        else:
            xd, yd = misaligned([x, np.full(n, np.nan, dtype)])
            (md,) = misaligned([mask0])
        got = ops.dropout(xd, rate, seed, out=yd, mask=md)
        assert got[0] is yd and got[1] is md
        cpu_y, cpu_mask = _C.dropout_forward(x, rate, seed)
        got_mask = host(md)
        assert np.array_equal(got_mask, cpu_mask), f"mask differs (n={n}, seed={seed}, rate={rate})"
        assert np.array_equal(got_mask, oracle.dropout(x, rate, seed)[1])
        got_y = host(yd)
        assert np.array_equal(got_y.view(np.uint8), cpu_y.view(np.uint8)), "y differs from the CPU"

        dy = rng.standard_normal(n).astype(dtype)
        dx = ops.dropout_grad(dev(dy), md, rate)
        cpu_dx = _C.dropout_backward(dy, cpu_mask, rate)
        assert np.array_equal(host(dx), cpu_dx), "dropout backward differs from the CPU"
