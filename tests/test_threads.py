"""How many threads fastnn uses: set_num_threads, then FASTNN_NUM_THREADS, then OMP_NUM_THREADS,
then the CPUs the process may use (affinity, cgroup CPU quota); the cap on the count; joblib's
workers and threadpoolctl's limits. Start-up defaults are read once per process, so those
cases run in a subprocess with a controlled environment."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import ops

CPUS = len(os.sched_getaffinity(0))


def _run(code, env_updates=(), affinity=None, timeout=120):
    """Run `code` in a fresh interpreter; returns its stdout parsed as JSON."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(dict(env_updates))
    preexec = None if affinity is None else (lambda: os.sched_setaffinity(0, affinity))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         preexec_fn=preexec, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


COUNT = "import json, fastnn; print(json.dumps(fastnn.get_num_threads()))"


@pytest.mark.parametrize("env, expected", [
    ({"OMP_NUM_THREADS": "1"}, 1),                               # what joblib's workers get
    ({"OMP_NUM_THREADS": "1,2"}, 1),                             # OpenMP's nested list form
    ({"FASTNN_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, 3),    # ours first
    ({"FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"}, 1),
    ({"FASTNN_NUM_THREADS": "junk", "OMP_NUM_THREADS": "2"}, 2),  # unreadable: next source
    ({"FASTNN_NUM_THREADS": "0", "OMP_NUM_THREADS": "-4"}, None),  # neither: the CPUs
])
def test_environment_precedence(env, expected):
    got = _run(COUNT, env)
    assert got == (fastnn._C.hardware_threads() if expected is None else expected)


def test_set_num_threads_beats_the_environment():
    code = "import json, fastnn; fastnn.set_num_threads(2); print(json.dumps(fastnn.get_num_threads()))"
    assert _run(code, {"FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}) == 2


def test_default_follows_cpu_affinity():
    first = min(os.sched_getaffinity(0))
    assert _run(COUNT, affinity={first}) == 1
    info = _run("import json, fastnn; print(json.dumps(fastnn.show_config()['hardware_threads']))",
                affinity={first})
    assert info == 1


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "max 100000\n"}, 0),                 # cgroup v2, no quota
    ({"cpu.max": "150000 100000\n"}, 2),              # 1.5 CPUs rounds up
    ({"cpu.max": "100000 100000\n"}, 1),
    ({"cpu.max": "50000 100000\n"}, 1),               # below one CPU: still one thread
    ({"cpu.max": "garbage\n"}, 0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0),  # v1, none
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3),
    ({}, 0),
])
def test_cgroup_cpu_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert fastnn._C.cgroup_cpu_limit(str(tmp_path), "/") == expected


def test_cgroup_quota_of_a_parent_group_applies(tmp_path):
    # cgroup v2: the tightest cpu.max between the process's group and the root counts.
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cpu.max").write_text("200000 100000\n")
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    assert fastnn._C.cgroup_cpu_limit(str(tmp_path), "/a/b") == 2
    assert fastnn._C.cgroup_cpu_limit(str(tmp_path), "/a") == 2


# ------------------------------------------------------------------ the cap
def test_thread_count_is_capped():
    cap = fastnn._C.max_threads()
    assert cap == 4 * CPUS == fastnn.show_config()["max_threads"]
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match=rf"set_num_threads: n must be <= {cap} .*got 100000"):
        fastnn.set_num_threads(100000)
    assert fastnn.get_num_threads() == before
    with pytest.raises(ValueError, match="got 100000"):
        fastnn._C.set_num_threads(100000)
    fastnn.set_num_threads(cap)  # the cap itself is allowed
    try:
        a = np.ones((64, 64), np.float32)
        assert ops.matmul(a, a)[0, 0] == 64
    finally:
        fastnn.set_num_threads(before)


def test_environment_above_the_cap_is_clamped():
    code = ("import json, numpy as np, fastnn; from fastnn import ops; a = np.ones((300, 300), "
            "np.float32); r = ops.matmul(a, a)[0, 0]; "
            "print(json.dumps([fastnn.get_num_threads(), fastnn._C.max_threads(), float(r)]))")
    n, cap, r = _run(code, {"FASTNN_NUM_THREADS": "100000"})
    assert n == cap and r == 300.0


# ------------------------------------------------------------------ joblib and threadpoolctl
def _worker_threads(_):
    import fastnn as f
    return os.environ.get("OMP_NUM_THREADS"), f.get_num_threads()


def test_joblib_workers_follow_their_thread_limit(monkeypatch):
    joblib = pytest.importorskip("joblib")
    monkeypatch.delenv("FASTNN_NUM_THREADS", raising=False)  # it would outrank OMP_NUM_THREADS
    # loky sets OMP_NUM_THREADS = cpus // n_jobs in its workers; fastnn must obey it there.
    results = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_worker_threads)(i) for i in range(2))
    for omp, n in results:
        assert omp is not None and n == int(omp)


def _fastnn_entries(threadpoolctl):
    return [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "fastnn"]


def test_threadpoolctl_limits_fastnn():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        (entry,) = _fastnn_entries(threadpoolctl)
        assert entry["user_api"] == "fastnn" and entry["num_threads"] == 2
        assert entry["version"] == fastnn.__version__
        assert os.path.samefile(entry["filepath"], fastnn._C.__file__)
        with threadpoolctl.threadpool_limits(1):
            assert fastnn.get_num_threads() == 1
        assert fastnn.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(limits=1, user_api="fastnn"):
            assert fastnn.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert fastnn.get_num_threads() == 2
        # A limit above the cap clamps, as OpenBLAS does with its own maximum.
        with threadpoolctl.threadpool_limits(100000):
            assert fastnn.get_num_threads() == fastnn._C.max_threads()
        assert fastnn.get_num_threads() == 2
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("order", ["fastnn first", "threadpoolctl first"])
def test_threadpoolctl_sees_fastnn_whatever_the_import_order(order):
    pytest.importorskip("threadpoolctl")
    imports = ("import fastnn, threadpoolctl" if order == "fastnn first"
               else "import threadpoolctl, fastnn")
    code = (f"import json, sys; {imports}\n"
            "info = [i for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'fastnn']\n"
            "with threadpoolctl.threadpool_limits(1):\n"
            "    inside = fastnn.get_num_threads()\n"
            "print(json.dumps([len(info), inside, fastnn.get_num_threads()]))")
    assert _run(code, {"FASTNN_NUM_THREADS": "2"}) == [1, 1, 2]


def test_import_does_not_load_threadpoolctl():
    code = "import json, sys, fastnn; print(json.dumps('threadpoolctl' in sys.modules))"
    assert _run(code) is False


def test_threadpoolctl_command_line_lists_fastnn():
    pytest.importorskip("threadpoolctl")
    # `python -m threadpoolctl -i fastnn` runs threadpoolctl as __main__, not as the module.
    out = subprocess.run([sys.executable, "-m", "threadpoolctl", "-i", "fastnn"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [i["internal_api"] for i in json.loads(out.stdout)].count("fastnn") == 1
