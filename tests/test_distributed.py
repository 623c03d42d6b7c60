"""Data-parallel training over MPI (fastnn.distributed): `mpirun -n 2` on this machine trains to
the weights one process reaches on the same global batches, and a dead or stalled rank ends the
job instead of hanging it. The ranks run tests/_mpi_worker.py; each run has a hang guard."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.layers import Dense

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'fastnn[mpi]')")

import _mpi_worker as worker  # noqa: E402 (tests/ is on sys.path, as for the other helpers)

HERE = os.path.dirname(os.path.abspath(__file__))
GUARD_S = 120  # a run that takes longer is a hang


def _mpirun():
    # The mpich wheel puts mpirun next to the interpreter.
    for where in (os.path.dirname(sys.executable), None):
        found = shutil.which("mpirun", path=where)
        if found:
            return found
    pytest.skip("mpirun is not on PATH (pip install 'fastnn[mpi]' brings the mpich wheel)")


def _run(scenario, out):
    env = dict(os.environ, FASTNN_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        return subprocess.run([_mpirun(), "-n", "2", sys.executable,
                               os.path.join(HERE, "_mpi_worker.py"), scenario, str(out)],
                              capture_output=True, text=True, timeout=GUARD_S, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun -n 2 ({scenario}) hung for {GUARD_S} s: {e.stderr}")


def _one_process_reference(optimizer):
    """One process on the same global batches: each accumulation group holds rank 0's batches
    of the group, then rank 1's (fastnn.distributed's definition of the global batch)."""
    (X0, y0), (X1, y1) = worker.data(0), worker.data(1)
    group = worker.BATCH * worker.ACCUMULATE
    Xs, ys = [], []
    for g in range(worker.ROWS // group):
        rows = slice(g * group, (g + 1) * group)
        Xs += [X0[rows], X1[rows]]
        ys += [y0[rows], y1[rows]]
    m = worker.model(optimizer)
    h = m.fit(np.concatenate(Xs), np.concatenate(ys), epochs=worker.EPOCHS,
              batch_size=worker.BATCH, accumulate_steps=2 * worker.ACCUMULATE, shuffle=False,
              verbose=0)
    return m.get_weights(), h.history["loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_train_to_the_weights_of_one_process(optimizer, tmp_path):
    # L2, dropout (p=0.3) and 2-batch gradient accumulation, 3 epochs.
    r = _run(optimizer, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    weights, losses = _one_process_reference(optimizer)
    for i, w in enumerate(weights):
        # The replicas are identical, bit for bit: the same averaged gradient, the same update.
        np.testing.assert_array_equal(ranks[0][f"arr_{i}"], ranks[1][f"arr_{i}"])
        # One process: the same weights up to the order of the float32 gradient sums.
        np.testing.assert_allclose(ranks[0][f"arr_{i}"], w, rtol=1e-5, atol=1e-6)
    # The logged loss is the mean over both ranks' samples, as one process logs it.
    np.testing.assert_allclose(ranks[0]["loss"], losses, rtol=1e-5)
    np.testing.assert_array_equal(ranks[0]["loss"], ranks[1]["loss"])
    # Only rank 0 writes checkpoints and logs.
    assert (tmp_path / "ckpt0.fastnn").exists() and (tmp_path / "log0.csv").exists()
    assert not (tmp_path / "ckpt1.fastnn").exists() and not (tmp_path / "log1.csv").exists()


def test_batchnorm_replicas_stay_identical_and_train_as_one_process(tmp_path):
    # Batch statistics are each rank's own batch's (one process's micro-batches'); the running
    # statistics are averaged after every epoch, so the replicas agree on every array.
    r = _run("batchnorm", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    weights, _ = _one_process_reference("batchnorm")
    roles = fastnn.layers.weight_roles(worker.model("batchnorm").layers)
    assert len(roles) == len(weights)
    for i, (w, role) in enumerate(zip(weights, roles)):
        np.testing.assert_array_equal(ranks[0][f"arr_{i}"], ranks[1][f"arr_{i}"])
        if fastnn.layers.ROLES[role].trainable:
            np.testing.assert_allclose(ranks[0][f"arr_{i}"], w, rtol=1e-5, atol=1e-6)


def test_shard_gives_each_rank_an_equal_block():
    from fastnn.distributed import shard

    class Comm:  # shard asks the communicator for the rank and the size only
        def __init__(self, rank):
            self.rank = rank

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return 3

    X, y = np.arange(22).reshape(11, 2), np.arange(11)
    with pytest.warns(UserWarning, match="the last 2 of 11 rows are left out"):
        blocks = [shard(X, y, comm=Comm(r)) for r in range(3)]
    assert [b[1].tolist() for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    np.testing.assert_array_equal(blocks[2][0], X[6:9])
    with pytest.raises(ValueError, match="X: 2 rows cannot give each of 3 ranks one"):
        shard(X[:2], comm=Comm(0))


def test_early_stopping_decides_alike_on_every_rank(tmp_path):
    r = _run("early", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    # patience 1 with an improvement threshold no epoch meets: both stop after epoch 2, with
    # the same (global) validation losses, from different local validation rows.
    assert len(ranks[0]["val_loss"]) == len(ranks[1]["val_loss"]) == 2
    np.testing.assert_array_equal(ranks[0]["val_loss"], ranks[1]["val_loss"])
    # The last one is the mean over both ranks' validation rows (16 each) of the final model.
    final = worker.model("adam")
    final.set_weights([ranks[0][f"arr_{i}"] for i in range(4)])
    local = [final.evaluate(X[48:], y[48:])["loss"] for X, y in map(worker.data, (0, 1))]
    np.testing.assert_allclose(ranks[0]["val_loss"][-1], np.mean(local), rtol=1e-6)


def test_a_rank_whose_loss_overflows_stops_every_rank_at_the_same_step(tmp_path):
    r = _run("nonfinite", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the loss became" in r.stderr  # fit's warning, on each rank
    ranks = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    assert len(ranks[0]["loss"]) == len(ranks[1]["loss"]) == 1
    for i in range(4):  # no update was taken on one rank and not the other
        np.testing.assert_array_equal(ranks[0][f"arr_{i}"], ranks[1][f"arr_{i}"])


def test_in_one_process_distributed_training_is_plain_training():
    from fastnn.distributed import DataParallel

    X, y = worker.data(0)
    alone, one_rank = worker.model("adam"), worker.model("adam")
    alone.fit(X, y, epochs=2, batch_size=8, verbose=0)
    one_rank.fit(X, y, epochs=2, batch_size=8, verbose=0, distributed=DataParallel())
    for a, b in zip(alone.get_weights(), one_rank.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_gpu_model_says_distributed_training_is_cpu_only(monkeypatch):
    import _cuda_standin
    from fastnn.distributed import DataParallel

    _cuda_standin.install(monkeypatch)
    m = fastnn.Sequential([Dense(4), Dense(3)], input_dim=10, device="cuda")
    m.compile("softmax_cross_entropy", "sgd")
    X, y = worker.data(0)
    with pytest.raises(NotImplementedError, match="runs on the CPU engine only"):
        m.fit(X, y, verbose=0, distributed=DataParallel())
    m.fit(X, y, verbose=0)  # the model is left as it was


def test_bad_distributed_arguments_are_named():
    from fastnn.distributed import DataParallel

    X, y = worker.data(0)
    with pytest.raises(TypeError, match="distributed: expected None, True or a"):
        worker.model("sgd").fit(X, y, distributed="mpi")
    with pytest.raises(TypeError, match="comm: expected an mpi4py communicator"):
        DataParallel(comm=object())
    with pytest.raises(ValueError, match="timeout: expected seconds > 0"):
        DataParallel(timeout=0)


def test_a_killed_rank_ends_the_job(tmp_path):
    r = _run("kill", tmp_path)
    assert r.returncode != 0
    assert not (tmp_path / "rank0.npz").exists()


def test_a_stalled_rank_ends_the_job_with_a_clear_error_on_the_others(tmp_path):
    # Rank 1 stops answering; rank 0 gives up after its timeout (3 s) and aborts the job.
    r = _run("stall", tmp_path)
    assert r.returncode != 0
    assert "DistributedError" in r.stderr
    assert "rank 0 of 2: waited 3 s for the other ranks' gradients" in r.stderr
    assert not (tmp_path / "rank0.npz").exists()
