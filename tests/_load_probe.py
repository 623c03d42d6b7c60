"""fastnn.load on untrusted files, each in a child process under a memory cap and a time limit, so
that a crash, a hang or a runaway allocation fails the test instead of the test run.

One child loads files one after another (starting a process per file would cost ~0.4 s each); a
file that kills or stalls it is recorded and a fresh child takes the next file. For each file the
child reports what happened:

    ("error", "ValueError", message)  load refused it with the named exception
    ("model", finite, None)           load gave a model; finite: its predictions on a few rows
                                      are finite (or predict refused / warned, see below)
    ("crash", returncode, stderr)     the child died (signal, abort)
    ("hang", timeout, None)           no answer within the time limit
"""

import json
import os
import selectors
import subprocess
import sys
import time

# Memory a child may use beyond what importing fastnn took: far below what a crafted header
# could make a careless loader allocate, far above what loading these small files needs.
MEMORY_BUDGET = 512 * 2**20

_CHILD = r"""
import json, sys, warnings
import numpy as np
import fastnn

def vm_size():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

vm = vm_size()
if vm:  # Linux: the cap is the address space now plus the budget (elsewhere: no cap)
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]), resource.RLIM_INFINITY))
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        model = fastnn.load(path)
    except Exception as e:
        report = ["error", type(e).__name__, str(e)[:300]]
    else:
        X = np.random.default_rng(0).uniform(-1, 1, (3, model.input_dim)).astype(np.float32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warned non-finite prediction is no silent NaN
                out = model.predict(X)
            finite = bool(np.isfinite(out).all())
        except (ValueError, RuntimeWarning):
            finite = True
        report = ["model", finite, None]
    print(json.dumps(report), flush=True)
"""


class LoadProbe:
    """probe(path) -> report tuple (see the module docstring). Use as a context manager."""

    def __init__(self, timeout=20.0, memory=MEMORY_BUDGET):
        self.timeout, self.memory = timeout, memory
        self.child = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop()

    def _start(self):
        env = dict(os.environ, FASTNN_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.child = subprocess.Popen([sys.executable, "-c", _CHILD, str(self.memory)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.child.stdout, selectors.EVENT_READ)

    def _stop(self):
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            for stream in (self.child.stdin, self.child.stdout, self.child.stderr):
                stream.close()
            self.selector.close()
            self.child = None

    def __call__(self, path):
        if self.child is None:
            self._start()
        try:
            self.child.stdin.write(os.fspath(path) + "\n")
            self.child.stdin.flush()
        except BrokenPipeError:
            pass  # died already: the read below sees EOF
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                self._stop()
                return ("hang", self.timeout, None)
            line = self.child.stdout.readline()
            if not line:  # EOF: the child died
                self.child.wait()
                code, err = self.child.returncode, self.child.stderr.read()[-2000:]
                self._stop()
                return ("crash", code, err)
            return tuple(json.loads(line))
