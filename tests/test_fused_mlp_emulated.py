"""The fused MLP kernel's index math on the CPU: tests/fused_mlp_emulator.py runs
csrc/cuda/fused_mlp.cu's blocks thread by thread (its shared-memory plan, staging order, SIMT
and mma.sync fragment addressing checked against the PTX ISA layouts, epilogues and edge slabs)
with a shared-memory race detector and NaN-poisoned memory, and the results go through the same
per-layer checks against the float64 oracle as the GPU tests (test_fused_mlp_gpu._check). No
GPU needed; what it cannot see: the hardware itself (timing, the real mma rounding, ptxas)."""

import pytest

import fused_mlp_emulator as emu
import test_fused_mlp_gpu as gpu_tests


def _run(monkeypatch, rows, *args, **kw):
    def emulated(X, ws, bs, names, params, precision, dY, want_dx=True):
        return emu.fused_mlp_host(X, ws, bs, names, precision, dY, act_params=params,
                                  want_dx=want_dx, rows=rows)

    monkeypatch.setattr(gpu_tests, "fused_mlp", emulated)
    return gpu_tests._check(*args, **kw)


PRECISIONS = ["fp32", "tf32", "bf16"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_narrow_stack_two_warps_edge_slab(monkeypatch, precision):
    # wp = 64 (the non-wide kernels); 2 blocks of 32 rows, the second with 5.
    _run(monkeypatch, 32, 37, [17, 33, 64, 9],
         [("relu", 0.0), ("tanh", 0.0), ("sigmoid", 0.0)], precision, seed=1)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_wide_stack(monkeypatch, precision):
    # wp = 128 (the wide kernels), no bias, one warp per block.
    _run(monkeypatch, 16, 20, [20, 100, 128, 5],
         [("tanh", 0.0), ("leaky_relu", 0.1), (None, 0.0)], precision, seed=2, bias=False)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_narrowing_then_widening(monkeypatch, precision):
    # Widths 1 and 3 inside the stack: padded columns of A from a wider earlier layer must never
    # reach a later product; no dX (the loop stops before layer 0).
    _run(monkeypatch, 32, 33, [64, 16, 1, 3, 48],
         [("elu", 1.0), ("softplus", 0.0), ("relu", 0.0), (None, 0.0)], precision, seed=3,
         want_dx=False)


def test_single_layer_and_tiny_batch(monkeypatch):
    _run(monkeypatch, 16, 1, [5, 7], [("sigmoid", 0.0)], "bf16", seed=4)
    _run(monkeypatch, 16, 3, [5, 7], [(None, 0.0)], "fp32", seed=5, want_dx=False)


@pytest.mark.parametrize("rows", [16, 32, 64, 128])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("wmax", [1, 17, 32, 33, 64, 65, 100, 128])
def test_shared_memory_plan(rows, precision, wmax):
    p = emu.Plan(emu.round_up(wmax, 32), rows, precision)
    # Regions in order, disjoint, 16-byte aligned where float4 / uint2 accesses start.
    assert p.Z == 0 and p.B % 4 == 0 and p.b_words % 4 == 0 and p.ldz % 4 == 0
    assert p.ldb % 4 == 0 and p.lda % 2 == 0
    if precision == "bf16":
        assert p.A == rows * p.ldz and p.A + p.a_words == p.B
        assert p.lda >= p.wp // 2
    assert p.bias == p.B + 2 * p.b_words and p.bias + 2 * emu.K_MAX_WIDTH == p.words
    # Bank-conflict-free fragment reads: A rows 4 words apart, B rows 8 apart (mod 32).
    assert p.lda % 32 == 4 and p.ldb % 32 == 8
    # H100: 227 KiB per block at most; the non-wide kernels (__launch_bounds__(256, 2)) fit two
    # 128-row blocks per SM (228 KiB per SM, 1 KiB reserved per block).
    assert p.bytes <= 227 * 1024
    if p.wp <= 64 and rows == 128:
        assert 2 * (p.bytes + 1024) <= 228 * 1024


# cudaDevAttrMaxSharedMemoryPerBlockOptin of the GPUs the default build covers.
SMEM_OPTIN = {"H100": 232448, "A100": 166912, "8.6/8.9": 101376}


@pytest.mark.parametrize("gpu", sorted(SMEM_OPTIN))
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("wmax", [1, 33, 64, 65, 96, 97, 128])
def test_slab_rows_fit_the_devices_shared_memory(gpu, precision, wmax):
    # The 128-row slab asks for up to 203 KiB: more than an A100 or an 8.x card allows. The slab
    # is halved until it fits (each row's arithmetic is the same for any slab), and where even 16
    # rows do not fit the stack is not fused (fused_mlp_fits_device: the engine runs the layers
    # one by one) instead of failing at launch.
    limit, wp = SMEM_OPTIN[gpu], emu.round_up(wmax, 32)
    rows = emu.fit_rows(wp, precision, 128, limit)
    if gpu == "H100":
        assert rows == 128  # the slab the kernel was written for, unchanged
    if rows:
        assert emu.Plan(wp, rows, precision).bytes <= limit
        assert rows == 128 or emu.Plan(wp, 2 * rows, precision).bytes > limit
    else:
        assert emu.Plan(wp, 16, precision).bytes > limit
    # An A100 fuses every stack (width 128 in 32-row slabs in fp32 / tf32); 8.6 / 8.9 cards all
    # but fp32 / tf32 stacks wider than 96, whose weights alone (two 128 x 136 float buffers)
    # need 136 KiB.
    assert (rows > 0) == (gpu != "8.6/8.9" or wp <= 96 or precision == "bf16")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_four_warps(monkeypatch, precision):
    # A 64-row slab (4 warps: the cross-warp race checks see more than a pair), two blocks.
    _run(monkeypatch, 64, 70, [8, 16, 8], [("relu", 0.0), (None, 0.0)], precision, seed=6)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_wide_stack_two_warps(monkeypatch, precision):
    # The wide kernels with 2 warps per block (cross-warp races), one row in the edge slab.
    _run(monkeypatch, 32, 33, [40, 128, 24], [("relu", 0.0), ("sigmoid", 0.0)], precision,
         seed=7)
