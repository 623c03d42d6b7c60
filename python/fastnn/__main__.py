"""`python -m fastnn` (and the `fastnn` console script): info, demo, bench."""

import argparse
import sys


def _cmd_info(args):
    import fastnn

    fastnn.show_config(print_out=True)
    return 0


def _cmd_demo(args):
    from fastnn import _demo

    return _demo.run(quick=args.quick, out=args.out, verbose=0 if args.quiet else 1)


def _cmd_bench(args):
    try:
        from bench.run import main as bench_main
    except ImportError:
        print("the bench suites live in the source tree: run `python -m bench` from a checkout",
              file=sys.stderr)
        return 2
    return bench_main(args.suites)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, compiler, SIMD path, threads, CUDA").set_defaults(
        fn=_cmd_info)
    demo = sub.add_parser("demo", help="train MLPs on a generated spiral and (with "
                          "scikit-learn) the bundled digits")
    demo.add_argument("--quick", action="store_true", help="smaller data and fewer epochs")
    demo.add_argument("--out", default="fastnn_spiral.png",
                      help="decision-boundary picture (needs matplotlib); '' for none")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(fn=_cmd_demo)
    bench = sub.add_parser("bench", help="run bench suites (from a source checkout)")
    bench.add_argument("suites", nargs="*", help="suite names (default: all)")
    bench.set_defaults(fn=_cmd_bench)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
