"""Synchronous data-parallel training over MPI: ``model.fit(X_r, y_r, distributed=DataParallel())``.

Every rank (process) holds a replica of the model and its own shard of the data (``shard``). Each
trains on its batches; after the backward pass(es) of an update the engine hands the gradients
to this module (the engine's one seam, csrc/engine/grad_hook.h), which averages them across the
ranks -- fused into buckets of ``bucket_mb`` at most, each one non-blocking ``Iallreduce`` -- and
every rank then applies the same fused update to the same weights, so the replicas never drift.

What each part of training means here:

- The global batch is the ranks' batches together: P ranks at batch_size B accumulating k
  batches train as one process at batch_size B accumulating P*k batches whose accumulation group
  holds rank 0's k batches, then rank 1's, ... -- the same weights up to the order of the float32
  sums (tests/test_distributed.py proves it for SGD and Adam with L2, dropout, accumulation).
- Dropout: rank r keys its masks as that single process keys batches r*k .. r*k+k-1 of the
  group, so no two ranks drop the same units of their rows.
- BatchNorm: batch statistics are each rank's own batch's (as PyTorch DDP without
  SyncBatchNorm); the running statistics are averaged across the ranks after every epoch, so
  every replica evaluates, predicts and saves the same model.
- Shuffling: each rank shuffles its own shard every epoch (seed, epoch), as alone.
- Metrics: the epoch's training loss and accuracy, and the validation metrics (each rank
  validates on its own validation rows), are summed over all ranks' samples: every rank sees
  the same logs, so EarlyStopping, ReduceLROnPlateau and schedules decide alike; a rank that
  stops (stop_training) stops all.
- Checkpoints: callbacks run on every rank, but ModelCheckpoint and CSVLogger write on rank 0
  only, and only rank 0 prints progress.
- Start: every rank takes rank 0's weights, optimizer state and step, and the ranks check that
  they agree on the rows per shard, batch_size, accumulate_steps, epochs and the model.
- Failure: a rank whose loss becomes non-finite tells the others (all stop with the warning); a
  rank that waits more than ``timeout`` seconds for the others raises DistributedError, and an
  exception leaving fit on any rank aborts the job (``MPI_Abort``; ``abort_on_error``) so that
  no rank hangs waiting for a dead one. Ctrl-C (which mpirun passes to every rank, each stopping
  at a different batch) is such an exception here, not fit's clean stop.

mpi4py is optional (``pip install fastnn[mpi]``, which brings the ``mpich`` wheel and so
``mpirun``): it is imported when a DataParallel is made. The CPU engine only (the GPU engine
raises NotImplementedError); not with the sampled softmax.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from typing import Any

import numpy as np

from ._checks import finite_real
from ._optional import require

__all__ = ["DataParallel", "DistributedError", "shard"]

# Waiting for a reduction: test this many times back to back, then yield the core between tests
# for up to _YIELD_S seconds, then sleep _NAP_S between tests (a rank waiting that long waits
# for a slower one, and a fraction of a millisecond more costs nothing next to it).
_SPIN_TESTS = 200
_YIELD_S = 0.002
_NAP_S = 0.0002


class DistributedError(RuntimeError):
    """A rank waited too long for the others, or they disagree about the training run."""


class _PeerStopped(Exception):
    """Another rank left the step (its loss became non-finite)."""


def _mpi() -> Any:
    # The mpi extra brings mpi4py and the mpich wheel, which gives mpirun.
    return require("mpi4py.MPI", "mpi", "fastnn.distributed")


def shard(X: Any, y: Any = None, comm: Any = None) -> Any:
    """This rank's share of (X, y): a contiguous block of n // P rows (P = the number of ranks),
    the same size on every rank as DataParallel needs. The last n % P rows are left out, with a
    warning. Returns X_r, or (X_r, y_r) when y is given."""
    comm = _mpi().COMM_WORLD if comm is None else comm
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"y: expected {n} rows to match X, got {len(y)}")
    size, rank = comm.Get_size(), comm.Get_rank()
    per = n // size
    if per == 0:
        raise ValueError(f"X: {n} rows cannot give each of {size} ranks one")
    if n % size:
        warnings.warn(f"shard: the last {n % size} of {n} rows are left out so that each of "
                      f"{size} ranks gets {per}", UserWarning, stacklevel=2)
    rows = slice(rank * per, (rank + 1) * per)
    return X[rows] if y is None else (X[rows], y[rows])


class DataParallel:
    """fit's ``distributed=``: average the gradients across the ranks of ``comm`` (default
    ``MPI.COMM_WORLD``) before every update. See the module's docstring for what each part of
    training means with several ranks.

    timeout: seconds a rank waits for the others' gradients (or statistics) before it raises
    DistributedError. bucket_mb: gradients smaller than this are fused (copied into one buffer
    of at most this size, in backward order) and reduced with one Iallreduce; larger ones are
    reduced in place. abort_on_error: an exception leaving fit on this rank is printed and
    ends the whole job (MPI_Abort), since the other ranks would otherwise wait for this one."""

    def __init__(self, comm: Any = None, timeout: float = 300.0, bucket_mb: float = 25.0,
                 abort_on_error: bool = True) -> None:
        self._MPI = _mpi()
        self.comm = self._MPI.COMM_WORLD if comm is None else comm
        if not isinstance(self.comm, self._MPI.Comm):
            raise TypeError(f"comm: expected an mpi4py communicator, got "
                            f"{type(self.comm).__name__}")
        if finite_real(timeout, "timeout") <= 0:
            raise ValueError(f"timeout: expected seconds > 0, got {timeout}")
        if finite_real(bucket_mb, "bucket_mb") <= 0:
            raise ValueError(f"bucket_mb: expected > 0, got {bucket_mb}")
        self.timeout = float(timeout)
        self.bucket_bytes = int(float(bucket_mb) * 2**20)
        self.abort_on_error = bool(abort_on_error)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # Seconds spent reducing gradients and updates reduced, for the bench (bench/suites/dist.py).
        self.reduce_seconds = 0.0
        self.reductions = 0

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, size={self.size}, timeout={self.timeout})"

    # ------------------------------------------------------------------ waiting with a deadline
    def _wait(self, requests: Any, what: str) -> None:
        if not isinstance(requests, list):
            requests = [requests]
        test = self._MPI.Request.Testall
        for _ in range(_SPIN_TESTS):
            if test(requests):
                return
        # Then yield the core between tests: a rank that spins while the others compute takes
        # a core from them when the ranks share cores (ranks x threads > cores), and a
        # non-blocking collective needs these tests to make progress.
        start = time.monotonic()
        deadline = start + self.timeout
        while not test(requests):
            now = time.monotonic()
            if now - start < _YIELD_S:
                os.sched_yield()
            else:
                time.sleep(_NAP_S)
            if now > deadline:
                raise DistributedError(
                    f"rank {self.rank} of {self.size}: waited {self.timeout:g} s for the other "
                    f"ranks' {what}; a rank died, hung, or left fit early")

    def _sum(self, values: Any, what: str) -> Any:
        """Element-wise sum over the ranks of a float64 vector."""
        send = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(send)
        self._wait(self.comm.Iallreduce(send, out, op=self._MPI.SUM), what)
        return out

    # ------------------------------------------------------------------ fit's steps
    def _begin(self, model: Any, n: int, batch_size: int, accumulate_steps: int, epochs: int,
               initial_epoch: int) -> None:
        """Checks that the ranks agree, gives every rank rank 0's model and installs the
        gradient hook."""
        if model._net.device >= 0:
            raise NotImplementedError("distributed: data-parallel training runs on the CPU "
                                      "engine only for now; build the model with device='cpu'")
        if model.loss == "sampled_softmax":
            raise NotImplementedError("distributed: not available with the sampled softmax")
        net = model._net
        params, state, buffers = net.read("params", "state", "buffers")
        mine = (n, batch_size, accumulate_steps, epochs, initial_epoch,
                tuple(p.shape for p in params), model.loss, type(model.optimizer).__name__)
        everyone = self.comm.allgather(mine)
        names = ("rows per shard (use fastnn.distributed.shard)", "batch_size",
                 "accumulate_steps", "epochs", "initial_epoch", "weight shapes", "loss",
                 "optimizer")
        for i, name in enumerate(names):
            seen = [e[i] for e in everyone]
            if any(v != seen[0] for v in seen):
                raise ValueError(f"distributed: the ranks disagree about the {name}: "
                                 f"{dict(enumerate(seen))}")
        step = self.comm.bcast(net.step, root=0)
        arrays = params + state + buffers
        for a in arrays:
            self.comm.Bcast(a, root=0)
        if self.rank:
            net.write(params=params, state=state, buffers=buffers)
            net.step = step
        self._layout([a.size for a in params], params[0].dtype if params else np.float32)
        net.set_grad_hook(self._reduce, micro_offset=self.rank * accumulate_steps)
        self._hooked = net

    def _layout(self, sizes: list[int], dtype: Any) -> None:
        """Buckets in backward order (the last layer's gradients first, as backward produces
        them): ('own', i) for a gradient reduced in place, ('fused', [i...]) for gradients
        copied into one buffer. The last fused buffer carries one more element, the stop flag."""
        itemsize = np.dtype(dtype).itemsize
        # (kind, index) for "own", (kind, [indices]) for "fused"
        self._buckets: list[tuple[str, Any]] = []
        fused: list[int] = []
        fused_bytes = 0
        for i in reversed(range(len(sizes))):
            nbytes = sizes[i] * itemsize
            if nbytes >= self.bucket_bytes:
                self._buckets.append(("own", i))
                continue
            if fused and fused_bytes + nbytes > self.bucket_bytes:
                self._buckets.append(("fused", fused))
                fused, fused_bytes = [], 0
            fused.append(i)
            fused_bytes += nbytes
        self._buckets.append(("fused", fused))  # perhaps empty: then it carries the flag only
        self._sizes = sizes
        self._buffers = [np.empty(sum(sizes[i] for i in b) + (k == len(self._buckets) - 1),
                                  dtype)
                         for k, (kind, b) in enumerate(self._buckets) if kind == "fused"]

    def _post(self, grads: list[Any], stop: bool) -> list[Any]:
        """Starts the reductions of every bucket (the stop flag in the last fused buffer);
        returns their requests."""
        SUM, requests, fused = self._MPI.SUM, [], iter(self._buffers)
        for kind, b in self._buckets:
            if kind == "own":
                requests.append(self.comm.Iallreduce(self._MPI.IN_PLACE, grads[b], op=SUM))
                continue
            buf, at = next(fused), 0
            for i in b:
                buf[at:at + self._sizes[i]] = grads[i]
                at += self._sizes[i]
            if buf is self._buffers[-1]:
                buf[-1] = float(stop)
            requests.append(self.comm.Iallreduce(self._MPI.IN_PLACE, buf, op=SUM))
        return requests

    def _reduce(self, grads: list[Any], micro: int) -> None:
        """The engine's hook: grads (views of the engine's gradients) become their mean over
        the ranks."""
        start = time.perf_counter()
        self._wait(self._post(grads, stop=False), "gradients")
        if self._buffers[-1][-1] != 0:
            raise _PeerStopped()
        scale = 1.0 / self.size
        fused = iter(self._buffers)
        for kind, b in self._buckets:
            if kind == "own":
                grads[b] *= scale
                continue
            buf, at = next(fused), 0
            for i in b:
                np.multiply(buf[at:at + self._sizes[i]], scale, out=grads[i])
                at += self._sizes[i]
        self.reduce_seconds += time.perf_counter() - start
        self.reductions += 1

    def _leave_step(self) -> None:
        """This rank leaves a step the others are in (its loss became non-finite): joins the
        reductions they wait in with the stop flag set, so that they stop too."""
        self._grad_scratch = getattr(self, "_grad_scratch", None) or [
            np.zeros(s, self._buffers[-1].dtype) for s in self._sizes]
        self._wait(self._post(self._grad_scratch, stop=True), "gradients")

    def _epoch_sums(self, values: list[float]) -> list[float]:
        return self._sum(values, "epoch statistics")

    def _average_buffers(self, net: Any) -> None:
        """BatchNorm running statistics: their mean over the ranks."""
        (buffers,) = net.read("buffers")
        if not buffers:
            return
        flat = self._sum(np.concatenate([b.ravel() for b in buffers]), "BatchNorm statistics")
        flat /= self.size
        at, out = 0, []
        for b in buffers:
            out.append(flat[at:at + b.size].reshape(b.shape).astype(b.dtype))
            at += b.size
        net.write(buffers=out)

    def _any(self, flag: bool) -> bool:
        return bool(self._sum([float(bool(flag))], "stop decisions")[0])

    def _mean_logs(self, logs: dict[str, float], rows: int) -> dict[str, float]:
        """Each rank's means over its `rows` samples as the means over all ranks' samples."""
        keys = sorted(logs)
        sums = self._sum([logs[k] * rows for k in keys] + [rows], "validation metrics")
        return {k: float(v / sums[-1]) if sums[-1] else float("nan")
                for k, v in zip(keys, sums[:-1])}

    def _callbacks(self, callbacks: Any) -> Any:
        """The callbacks this rank runs: on ranks other than 0, not the ones that write files."""
        if self.rank == 0 or not callbacks:
            return callbacks
        from .callbacks import CSVLogger, ModelCheckpoint

        return [c for c in callbacks if not isinstance(c, (ModelCheckpoint, CSVLogger))]

    def _end(self, model: Any, error: BaseException | None) -> None:
        hooked, self._hooked = getattr(self, "_hooked", None), None
        if hooked is not None:
            hooked.set_grad_hook(None)
        if error is not None and self.abort_on_error and self.size > 1:
            # The others may be waiting in a reduction for this rank: end them all, saying why.
            sys.stderr.write(f"fastnn.distributed: rank {self.rank} of {self.size} failed; "
                             f"aborting the job:\n")
            traceback.print_exception(type(error), error, error.__traceback__,
                                      file=sys.stderr)
            sys.stderr.flush()
            self.comm.Abort(1)


class _Local:
    """fit's partner when it runs in one process: every step is the identity."""

    rank, size = 0, 1

    def _begin(self, *args: Any) -> None:
        pass

    def _leave_step(self) -> None:
        pass

    def _epoch_sums(self, values: list[float]) -> list[float]:
        return values

    def _average_buffers(self, net: Any) -> None:
        pass

    def _any(self, flag: bool) -> bool:
        return flag

    def _mean_logs(self, logs: dict[str, float], rows: int) -> dict[str, float]:
        return logs

    def _callbacks(self, callbacks: Any) -> Any:
        return callbacks

    def _end(self, model: Any, error: BaseException | None) -> None:
        pass


def for_fit(distributed: Any) -> DataParallel | _Local:
    """fit's `distributed` argument as the object fit calls at each step."""
    if distributed is None or distributed is False:
        return _Local()
    if distributed is True:
        return DataParallel()
    if isinstance(distributed, DataParallel):
        return distributed
    raise TypeError(f"distributed: expected None, True or a fastnn.distributed.DataParallel, "
                    f"got {type(distributed).__name__}")

