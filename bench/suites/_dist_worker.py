"""One timed data-parallel fit, run by bench/suites/dist.py under ``mpirun -n P``:
python -m bench.suites._dist_worker NETWORK GLOBAL_BATCH STEPS EPOCHS THREADS

Every rank trains on its own STEPS x GLOBAL_BATCH/P rows for EPOCHS epochs after a one-epoch
warm-up; rank 0 prints one JSON line: samples/s over all ranks, seconds per step, the seconds
per step spent in the gradient allreduce (DataParallel's hook: packing, reducing, waiting for the
other rank), and a bare Allreduce of the gradient's size timed alone."""

import json
import statistics
import sys
import time

import numpy as np
from mpi4py import MPI

import fastnn
from bench.suites._mlp import NETWORKS, data, fastnn_model
from fastnn.distributed import DataParallel


def main(network, global_batch, steps, epochs, threads):
    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    fastnn.set_num_threads(threads)
    widths = NETWORKS[network]
    batch = global_batch // size
    X, y = data(widths, batch * steps, seed=rank)
    model = fastnn_model(widths)
    model.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-3))
    dp = DataParallel(timeout=600) if size > 1 else None
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0, distributed=dp)  # warm-up
    if dp:
        dp.reduce_seconds, dp.reductions = 0.0, 0
    comm.Barrier()
    t0 = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=batch, verbose=0, distributed=dp)
    comm.Barrier()
    elapsed = time.perf_counter() - t0
    grad = np.zeros(sum(w.size for w in model.get_weights()), np.float32)
    alone = []
    for _ in range(7):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
        alone.append(time.perf_counter() - t)
    if rank == 0:
        print(json.dumps({
            "samples_per_s": global_batch * steps * epochs / elapsed,
            "step_s": elapsed / (steps * epochs),
            "reduce_step_s": dp.reduce_seconds / dp.reductions if dp else 0.0,
            "allreduce_alone_s": statistics.median(alone) if size > 1 else 0.0,
            "grad_bytes": int(grad.nbytes)}))


if __name__ == "__main__":
    name, b, s, e, t = sys.argv[1:6]
    main(name, int(b), int(s), int(e), int(t))
