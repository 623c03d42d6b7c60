"""Run under mpirun by tests/test_distributed.py: one scenario of data-parallel training per
call (argv[1]), results written by each rank to argv[2]/rank<r>.npz."""

import os
import signal
import sys
import time

import numpy as np

import fastnn
from fastnn.distributed import DataParallel
from fastnn.layers import BatchNorm, Dense, Dropout

# Each rank's shard: ROWS rows, batches of BATCH, ACCUMULATE batches per update.
ROWS, BATCH, ACCUMULATE, EPOCHS = 64, 8, 2, 3


def data(rank):
    rng = np.random.default_rng(100 + rank)
    X = rng.standard_normal((ROWS, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def model(optimizer):
    """optimizer: "sgd", "adam", or "batchnorm" (Adam, with a BatchNorm layer)."""
    opt = fastnn.optim.SGD(lr=0.05, momentum=0.9) if optimizer == "sgd" else \
        fastnn.optim.Adam(lr=1e-2)
    norm = [BatchNorm()] if optimizer == "batchnorm" else []
    m = fastnn.Sequential([Dense(16, "relu", l2=1e-3)] + norm + [Dropout(0.3), Dense(3)],
                          input_dim=10, seed=3)
    m.compile("softmax_cross_entropy", opt, metrics=["accuracy"])
    return m


class Fail(fastnn.callbacks.Callback):
    """Rank 1 dies (kill) or stops answering (stall) at the start of the second epoch."""

    def __init__(self, how):
        self.how = how

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1 and self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if epoch == 1 and self.how == "stall":
            time.sleep(120)


def main(scenario, out):
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    X, y = data(rank)
    if scenario in ("sgd", "adam", "batchnorm"):
        m = model(scenario)
        # Checkpoints and CSV logs: written by rank 0 only (each rank names its own file here,
        # so that a write from rank 1 would show).
        saves = [fastnn.callbacks.ModelCheckpoint(os.path.join(out, f"ckpt{rank}.fastnn"),
                                                  monitor="loss"),
                 fastnn.callbacks.CSVLogger(os.path.join(out, f"log{rank}.csv"))]
        h = m.fit(X, y, epochs=EPOCHS, batch_size=BATCH, accumulate_steps=ACCUMULATE,
                  shuffle=False, verbose=0, callbacks=saves,
                  # SGD: 256-byte buckets, so that the kernels are reduced in place and the
                  # biases in several fused buffers; else one fused buffer
                  distributed=DataParallel(timeout=60,
                                           bucket_mb=2**-12 if scenario == "sgd" else 25))
        np.savez(os.path.join(out, f"rank{rank}.npz"), *m.get_weights(),
                 loss=np.array(h.history["loss"]))
    elif scenario == "early":
        # Each rank validates on its own last quarter; the logs are over both ranks' rows.
        m = model("adam")
        stop = fastnn.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)
        h = m.fit(X, y, epochs=10, batch_size=BATCH, validation_split=0.25, verbose=0,
                  callbacks=[stop], distributed=DataParallel(timeout=60))
        np.savez(os.path.join(out, f"rank{rank}.npz"), *m.get_weights(),
                 loss=np.array(h.history["loss"]), val_loss=np.array(h.history["val_loss"]))
    elif scenario == "nonfinite":
        if rank == 1:
            X[5:] = 3e38  # the loss overflows on rank 1's first batch only
        m = model("sgd")
        h = m.fit(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=0,
                  distributed=DataParallel(timeout=60))
        np.savez(os.path.join(out, f"rank{rank}.npz"), *m.get_weights(),
                 loss=np.array(h.history["loss"]))
    elif scenario in ("kill", "stall"):
        m = model("sgd")
        callbacks = [Fail(scenario)] if rank == 1 else []
        m.fit(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=callbacks,
              distributed=DataParallel(timeout=3))
        np.savez(os.path.join(out, f"rank{rank}.npz"), done=np.array(1))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
