// The reduction family's contract, implemented by cpu/reduce.h and cuda/reduce.h: row
// reductions over a row-major, C-contiguous (N, F) matrix and the accuracy counts training needs.
//   sum_rows / mean_rows   x (N, F) -> out (F,): column sums accumulated in double and rounded
//                          to T once; mean divides by N (N > 0, else ValueError).
//   argmax_rows            x (N, F), F > 0 -> idx (N,) int64: the first maximum of each row, NaN
//                          above every number (numpy.argmax): a row with a NaN gives its first NaN.
//   count_correct          rows whose argmax (as above) is the label; labels outside [0, C) are
//                          never correct and make the op raise ValueError.
//   binary_correct         elements where (logits > threshold) == (targets >= 0.5); a NaN logit
//                          predicts 0.
// Each sum runs over a partition that depends on (N, F) only, added in a fixed order: the same
// inputs give the same bits for any thread count (CPU) and on any GPU.
#pragma once
