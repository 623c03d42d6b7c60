"""Ctrl-C during a long predict or evaluate: the call ends with KeyboardInterrupt instead of
running to the end of its work, and the model stays usable.

Each case runs in a subprocess that sends itself SIGINT one second into a call that would take
minutes; the subprocess's timeout is the hang guard. No latency is measured: speed is not
what this checks."""

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    import numpy as np
    import fastnn
    from fastnn.layers import Dense

    kind = sys.argv[1]
    # About 3.4e13 flops: minutes of work on one thread, so a call that honoured Ctrl-C only
    # once it returned would outlast the parent's hang guard many times over.
    m = fastnn.Sequential([Dense(4096, "relu"), Dense(4096, "relu"), Dense(10, "softmax")],
                          input_dim=64, seed=1)
    m.compile("softmax_cross_entropy")
    X = np.full((1_000_000, 64), 0.5, np.float32)
    y = np.zeros(len(X), np.int64)
    call = {"predict": lambda: m.predict(X, batch_size=128),
            "evaluate": lambda: m.evaluate(X, y, batch_size=128)}[kind]
    before = m.predict(X[:50])
    # One second in: well inside the call (everything above is already done).
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        call()
        print("completed")
    except KeyboardInterrupt:
        print("interrupted")
    after = m.predict(X[:50])
    assert np.array_equal(before, after)
    m.fit(X[:64], y[:64], epochs=1, verbose=0)  # the model's lock was released
    print("usable")
""")


@pytest.mark.parametrize("kind", ["predict", "evaluate"])
def test_ctrl_c_interrupts_long_inference(kind):
    env = dict(os.environ, FASTNN_NUM_THREADS="1")
    # The timeout is a hang guard: an uninterruptible call would run for minutes past it.
    p = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "interrupted" in p.stdout and "usable" in p.stdout, p.stdout + p.stderr
    print(p.stdout)
