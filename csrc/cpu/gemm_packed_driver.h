// The GEMM on a B prepared once in column panels (cpu/gemm_packed.h), written once and compiled
// once per instruction set: include it after gemm_driver.h, in the same translation unit, so it
// runs the same micro-kernels (Kernel) with the same K blocking.
//
// Why: inference multiplies the same weights again and again. The plain driver packs B on every
// call (batch 1 of a 128 x 10 classifier spends more time packing than multiplying), or reads it
// in place with rows N floats apart, which for batch 1 on a wide layer crosses a page every row
// or two and defeats the hardware prefetcher. In panels, each KC x P slice the micro-kernel walks
// is one contiguous run, read once per pass at streaming speed: batch 1 is a GEMV that streams
// the weights once; larger batches skip the packing of B.
//
// Same bits as gemm(): every element is the same sequence of FMAs (k in order inside each KC
// block, the blocks added to C in order), whichever kernel or thread computes it, so a row
// predicted alone equals that row of a batch prediction.
#pragma once
#ifndef FASTNN_ISA
#error "include gemm_driver.h (with FASTNN_ISA defined) before gemm_packed_driver.h"
#endif

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {

// Row-major, ungated A (every forward pass) is read where it lies: the kernel broadcasts each
// row's values in k order, the same FMAs as from a packed sliver. Packing cost up to half a layer
// with few columns (512 x 128 x 10, one thread: 69 -> 36 us read in place; 512 x 64 x 128: 112
// -> 103 us). Rows a multiple of 2 KiB apart are packed still: a sliver's rows then share a few
// L1 sets and evict each other (32 x 2048 x 2048 was 12% slower read in place).
template <class T>
bool reads_a_in_place(const GemmArgs<T>& g) {
  return g.csa == 1 && !g.gate_a.data && (g.rsa * int64_t(sizeof(T))) % 2048 != 0;
}

// One thread's share: C rows [m0, m1) x columns [n0, n1), n0 on a panel boundary. B's panels:
// panel p holds columns [p P, p P + P) as K rows of P values (zero past N).
//
// Rows past the last whole MR-row sliver of a row block go to Tail's shorter slivers: Kern
// computes all MR rows whatever the number of valid ones, so 16 rows (batch 32 split in two)
// cost 24 rows of work on the 12-row kernel alone, 16 with a 4-row tail. Both kernels run the
// same FMA sequence per element (same KC), so a row's bits do not depend on which one ran it.
template <class Kern, class Tail = Kern>
void packed_block(const GemmArgs<typename Kern::T>& g, const typename Kern::T* panels, int64_t P,
                  int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using T = typename Kern::T;
  constexpr int MR = Kern::MR, NR = Kern::NR;
  static_assert(Tail::NR == NR && Tail::MR <= MR && Tail::KC == Kern::KC,
                "the tail kernel must tile the same panels with the same K blocking");
  static thread_local ScratchBuffer<T> a_buf;
  T* ap = a_buf.get(round_up(Kern::MC, MR) * Kern::KC);
  // Column blocks of whole panels, about NC wide: the B block of one (jc, pc) stays in cache
  // while the row blocks of A pass over it.
  const int64_t nc_max = Kern::NC > P ? Kern::NC / P * P : P;
  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = imin(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < g.K; pc += Kern::KC) {
      const int64_t kc = imin(Kern::KC, g.K - pc);
      Epilogue<T> ep = block_epilogue(g, pc, kc);
      for (int64_t ic = m0; ic < m1; ic += Kern::MC) {
        const int64_t mc = imin(Kern::MC, m1 - ic);
        // Rows [0, full) in MR-row slivers, the rest in Tail::MR-row ones right after them.
        const int64_t full = Tail::MR < MR ? mc / MR * MR : mc;
        const int64_t a_off = ic * g.rsa + pc * g.csa;
        const bool a_in_place = reads_a_in_place(g);
        if (!a_in_place) {
          pack_slivers<MR>(full, kc, g.A + a_off, g.rsa, g.csa, ap,
                           static_cast<const T*>(nullptr), g.gate_a);
          if (full < mc)
            pack_slivers<Tail::MR>(mc - full, kc, g.A + a_off + full * g.rsa, g.rsa, g.csa,
                                   ap + full * kc, static_cast<const T*>(nullptr), g.gate_a);
        }
        auto slivers = [&](auto kernel, int64_t r0, int64_t r1) {
          using K = decltype(kernel);
          for (int64_t ir = r0; ir < r1; ir += K::MR) {
            for (int64_t jr = 0; jr < nc; jr += NR) {
              const int64_t col = jc + jr;
              const T* b = panels + (col / P) * g.K * P + pc * P + col % P;
              ep.bias = g.bias ? g.bias + col * g.bias_stride : nullptr;
              const int64_t c_off = (ic + ir) * g.rsc + col * g.csc;
              ep.z = g.Z ? g.Z + c_off : nullptr;
              if (a_in_place)
                K::template run<true>(kc, g.A + a_off + ir * g.rsa, b, P, g.C + c_off, g.rsc,
                                      g.csc, imin(K::MR, r1 - ir), imin(NR, nc - jr), ep, g.rsa);
              else
                K::run(kc, ap + ir * kc, b, P, g.C + c_off, g.rsc, g.csc, imin(K::MR, r1 - ir),
                       imin(NR, nc - jr), ep);
            }
          }
        };
        slivers(Kern(), 0, full);
        if (full < mc) slivers(Tail(), full, mc);
      }
    }
  }
}

// Splits C over threads into a tm x tn grid: MR-row blocks by whole panels, each thread's columns
// cut again into a few tasks that the threads pull in turn (parallel_for hands out tasks as
// threads ask): a thread that starts late -- woken from sleep, or held off its core by another
// process -- leaves its tasks to the one running instead of being waited for.
template <class Kern, class Tail = Kern>
void packed_blocked(const GemmArgs<typename Kern::T>& g, const typename Kern::T* panels,
                    int64_t P) {
  constexpr int MR = Kern::MR;
  const int64_t mblocks = (g.M + MR - 1) / MR, pblocks = (g.N + P - 1) / P;
  // The plain driver's threshold (~0.8 MFLOP), also for batch 1: the second thread sleeps
  // between sporadic predict calls (a futex wake-up, tens of microseconds on a VM) and, on a busy
  // machine, waits for a core; 784 x 256 (medium network, batch 1) measured 15 us on one thread,
  // a median of 260 us on two with the other core loaded (26 vs 50 us under load again with the
  // tasks below).
  const double macs = double(g.M) * double(g.N) * double(g.K);
  int nt = macs < 400000.0 ? 1 : get_num_threads();
  if (nt > mblocks * pblocks) nt = static_cast<int>(mblocks * pblocks);
  if (nt <= 1) {
    packed_block<Kern, Tail>(g, panels, P, 0, g.M, 0, g.N);
    return;
  }
  int best_tm = nt, best_tn = 1;
  double best_cost = 1e300;
  for (int tm = nt; tm >= 1; --tm) {
    if (nt % tm) continue;
    const int tn = nt / tm;
    const double cost =
        double((mblocks + tm - 1) / tm) * MR * double((pblocks + tn - 1) / tn) * double(P);
    if (cost < best_cost) {
      best_cost = cost;
      best_tm = tm;
      best_tn = tn;
    }
  }
  // Tasks per thread's columns: 4 where A is read in place (a task costs nothing to start), 2
  // where each task packs its rows of A again.
  const int64_t per = reads_a_in_place(g) ? 4 : 2;
  const int tm = best_tm;
  const int tn = static_cast<int>(imin(pblocks, best_tn * per));
  parallel_for(tm * tn, [&](int t) {
    const int ti = t / tn, tj = t % tn;
    const int64_t m0 = mblocks * ti / tm * MR, m1 = imin(mblocks * (ti + 1) / tm * MR, g.M);
    const int64_t n0 = pblocks * tj / tn * P, n1 = imin(pblocks * (tj + 1) / tn * P, g.N);
    if (m0 < m1 && n0 < n1) packed_block<Kern, Tail>(g, panels, P, m0, m1, n0, n1);
  });
}

// The panel width B is packed with for N columns: the big kernel's width (each panel is then
// one of the slivers the plain driver packs), or for few columns the one-vector kernels' (as
// gemm_by_rows picks them). Every kernel used on the panels divides it.
template <class Big, class Single, class Narrow>
int64_t packed_width_for(int64_t N) {
  static_assert(Big::NR % Single::NR == 0, "the one-row kernel must tile the panels");
  return Narrow::NR < Big::NR && N <= Narrow::NR ? Narrow::NR : Big::NR;
}

// gemm_by_rows on panels of width P (packed_width_for(g.N)).
template <class Big, class Small, class Single, class Narrow, class NarrowSingle>
void packed_by_rows(const GemmArgs<typename Big::T>& g, const typename Big::T* panels, int64_t P) {
  static_assert(Big::NR % Small::NR == 0, "the short kernel must tile the panels");
  if (P == Narrow::NR && Narrow::NR < Big::NR) {
    if (g.M == 1)
      packed_blocked<NarrowSingle>(g, panels, P);
    else
      packed_blocked<Narrow>(g, panels, P);
  } else if (g.M == 1) {
    packed_blocked<Single>(g, panels, P);
  } else if (g.M <= Small::MR) {
    packed_blocked<Small>(g, panels, P);
  } else {
    packed_blocked<Big, Small>(g, panels, P);
  }
}

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
