"""Benchmark harness for fastnn.

Run from the repository root::

    python -m bench [suites...] [--json PATH] [--quick]

Results go to ``bench/out/<suite>.json`` unless ``--json`` says otherwise.
"""
