// What the AVX2 and AVX-512 GEMM units share beyond gemm_driver.h: the vector register types
// the micro-kernels run on and the set of kernel shapes gemm_by_rows chooses from. Include it,
// after defining FASTNN_ISA and including that ISA's simd_vec_*.h, from the unit compiled with
// the ISA's flags (see gemm_driver.h on why everything stays in fastnn::cpu::FASTNN_ISA).
#pragma once
// Every x86 vector ISA has its activations_<isa>.cpp: epilogue and gates run on its vector math.
#define FASTNN_ISA_VECTOR_ACTIVATIONS 1
#include "cpu/gemm_driver.h"
#include "cpu/gemm_packed_driver.h"

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {

// The ISA's register wrapper V plus the one blend the epilogue names.
template <class V>
struct GemmVec : V {
  using R = typename V::R;
  static R select_positive(R x, R if_pos, R otherwise) {
    return V::select(V::cmp_gt(x, V::zero()), if_pos, otherwise);
  }
};

// The kernels of one blocking on register type V: an MR-row micro-kernel two vectors wide, an
// MR_SMALL-row one four vectors wide for short matrices, their one-row forms, and one-vector-wide
// forms for few output columns (a classifier's last layer); KC, MC, NC block as in
// gemm_driver.h. The GEMM on packed panels (gemm_packed_driver.h) runs kernels of the same K
// blocking, so both give the same bits: panels as wide as the big kernel (each panel one of its
// packed slivers), and for few rows kernels of that width (one or MR_SMALL rows, two vectors).
template <class V, int MR, int MR_SMALL, int KC, int MC, int NC>
struct KernelSet {
  using Vec = GemmVec<V>;
  using Big = Kernel<Vec, MR, 2, KC, MC, NC>;
  using Small = Kernel<Vec, MR_SMALL, 4, KC, MC, NC>;
  using Single = Kernel<Vec, 1, 4, KC, MC, NC>;
  using Narrow = Kernel<Vec, MR, 1, KC, MC, NC>;
  using NarrowSingle = Kernel<Vec, 1, 1, KC, MC, NC>;
  using PanelSmall = Kernel<Vec, MR_SMALL, 2, KC, MC, NC>;
  using PanelSingle = Kernel<Vec, 1, 2, KC, MC, NC>;

  static void gemm(const GemmArgs<typename V::T>& g) {
    gemm_by_rows<Big, Small, Single, Narrow, NarrowSingle>(g);
  }
  static void gemm_packed(const GemmArgs<typename V::T>& g, const typename V::T* panels,
                          int64_t P) {
    packed_by_rows<Big, PanelSmall, PanelSingle, Narrow, NarrowSingle>(g, panels, P);
  }
  static int64_t packed_width(int64_t N) { return packed_width_for<Big, PanelSingle, Narrow>(N); }
};

// The blocked GEMM with KernelSet<V, MR, MR_SMALL, KC, MC, NC>'s kernels.
template <class V, int MR, int MR_SMALL, int KC, int MC, int NC>
void gemm_blocked(const GemmArgs<typename V::T>& g) {
  KernelSet<V, MR, MR_SMALL, KC, MC, NC>::gemm(g);
}

// The entry points gemm.cpp dispatches to, defined by the including unit with its blocking.
void gemm(const GemmArgs<float>& g);
void gemm(const GemmArgs<double>& g);
// The float GEMM on B packed in panels of width P (cpu/gemm_packed.h), and that width for N
// columns; the same kernels and blocking as gemm().
void gemm_packed(const GemmArgs<float>& g, const float* panels, int64_t P);
int64_t packed_width(int64_t N);

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
