"""Benchmark suites. Each module exposes NAME, DESCRIPTION and run(ctx) -> dict."""
