"""`python -m fastnn` (and the `fastnn` console script): info, demo, train, predict, bench.

The commands are here; the demo they run is cli/demo.py, and the tables they train on and predict
for are read by cli/table.py."""

import argparse
import os
import sys


def _cmd_info(args):
    import fastnn

    fastnn.show_config(print_out=True)
    return 0


def _cmd_demo(args):
    from fastnn.cli import demo

    return demo.run(quick=args.quick, out=args.out, verbose=0 if args.quiet else 1)


def _cmd_train(args):
    import fastnn
    from fastnn.cli import table as tables
    from fastnn.data import train_test_split
    from fastnn.layers import Dense

    table = tables.read_table(args.data)
    target = args.target
    if target is None:
        if "y" not in table.names:
            raise ValueError(f"--target: name the column to predict; columns are {table.names}")
        target = "y"
    j = table.index_of(target)
    feature_cols = [k for k in range(len(table.names)) if k != j]
    if not feature_cols:
        raise ValueError(f"{args.data}: no feature columns besides the target {table.names[j]!r}")
    X = table.features(feature_cols)
    task, y, classes = tables.target(table, j, args.task)
    if args.validation_split:
        # Rows of a file are often sorted (by class, by date): the held-out rows are drawn at
        # random, and for classes in each class's proportion, so that both parts see every class.
        try:
            X, Xv, y, yv = train_test_split(X, y, test_size=args.validation_split, seed=args.seed,
                                            stratify=task == "classification")
        except ValueError as e:
            raise ValueError(f"--validation-split {args.validation_split}: {e}") from None
        how = "stratified by class" if task == "classification" else "at random"
        print(f"validation: {len(Xv)} of {len(X) + len(Xv)} rows, {how} (seed {args.seed})")
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    hidden = args.hidden
    layers = [Dense(h, "relu") for h in hidden]
    meta = {"feature_names": [table.names[k] for k in feature_cols], "mean": mean.tolist(),
            "std": std.tolist(), "task": task}
    if task == "classification":
        layers.append(Dense(len(classes), "softmax"))
        loss, metrics = "softmax_cross_entropy", ["accuracy"]
        meta["classes"] = classes
    else:
        ymean, ystd = float(y.mean()), float(y.std() or 1.0)
        layers.append(Dense(1))
        loss, metrics = "mse", ["mae"]
        y = (y - ymean) / ystd
        meta["target_mean"], meta["target_std"] = ymean, ystd
    val = None
    if args.validation_split:
        val = ((Xv - mean) / std, yv if task == "classification" else (yv - ymean) / ystd)
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=args.seed)
    model.compile(loss, fastnn.optim.Adam(lr=args.lr), metrics=metrics)
    print(f"{task}: {len(X)} samples, {X.shape[1]} features, layers "
          f"{[X.shape[1]] + hidden + [layers[-1].units]}")
    model.fit((X - mean) / std, y, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=val, verbose=0 if args.quiet else 1)
    model.save(args.out, metadata={"cli": meta})
    print(f"saved {args.out}")
    return 0


def _cmd_predict(args):
    import numpy as np

    import fastnn
    from fastnn.cli import table as tables
    from fastnn.io import load_arrays

    model = fastnn.load(args.model)
    _, meta = load_arrays(args.model)
    cli = meta.get("cli")
    table = tables.read_table(args.data)
    if cli is None:
        X = table.features(range(len(table.names)))
    else:
        missing = [n for n in cli["feature_names"] if n not in table.names]
        if missing:
            raise ValueError(f"{args.data}: missing feature columns {missing} (the model was "
                             f"trained on {cli['feature_names']})")
        X = table.features([table.names.index(n) for n in cli["feature_names"]])
        X = (X - np.array(cli["mean"], np.float32)) / np.array(cli["std"], np.float32)
    p = model.predict(X)
    if cli and cli["task"] == "classification":
        out = [str(cli["classes"][k]) for k in p.argmax(axis=1)]
    elif cli:
        out = [str(v) for v in p[:, 0] * cli["target_std"] + cli["target_mean"]]
    else:
        out = [",".join(str(x) for x in row) for row in p]
    text = "prediction\n" + "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _bench_checkout():
    """The source checkout this fastnn was installed from in editable mode, or None: the bench
    suites live in the repository's bench/ folder and are not shipped in the package."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    return root if (root / "bench" / "run.py").is_file() else None


def _cmd_bench(args):
    root = _bench_checkout()
    if root is None:
        print("fastnn bench: the benchmark suites are not part of the installed package; they "
              "live in the bench/ folder of the fastnn source repository. Clone it, install "
              "fastnn from it (pip install -e .) and run `python -m bench [SUITE ...]` in its "
              "root.", file=sys.stderr)
        return 2
    # The checkout's bench package, not whatever `bench` the working directory holds.
    sys.path.insert(0, str(root))
    from bench.run import main as bench_main

    return bench_main(args.bench_argv)


class _Parser(argparse.ArgumentParser):
    """argparse with its exit status 2 for a bad command line, but the error in one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(low):
    def parse(text):
        value = int(text)  # argparse reports a ValueError as "invalid ... value"
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _fraction(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def _positive(text):
    value = float(text)
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _widths(text):
    try:
        widths = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        widths = None
    if widths is None or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected layer widths like 128,64 (positive "
                                         f"integers, comma-separated; '' for none), got {text!r}")
    return widths


def _version():
    from fastnn import __version__

    return f"fastnn {__version__}"


def main(argv=None):
    parser = _Parser(prog="fastnn", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
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
    train = sub.add_parser("train", help="train an MLP on a table (CSV with a header, .npy, "
                           ".npz with X and y) and save it")
    train.add_argument("data")
    train.add_argument("--target", help="the column to predict (name or index; .npz: y)")
    train.add_argument("--hidden", type=_widths, default=[128, 64],
                       help="hidden layer widths, e.g. 128,64 (default)")
    train.add_argument("--epochs", type=_count(0), default=20)
    train.add_argument("--batch-size", type=_count(1), default=32)
    train.add_argument("--lr", type=_positive, default=1e-3, help="Adam's learning rate")
    train.add_argument("--validation-split", type=_fraction, default=0.0,
                       help="fraction of the rows held out to validate, drawn at random with "
                            "--seed (for classes: stratified, every class in its proportion)")
    train.add_argument("--task", choices=("auto", "classification", "regression"),
                       default="auto", help="auto: text or few whole-number targets are classes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="model.fastnn")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(fn=_cmd_train)
    predict = sub.add_parser("predict", help="predict with a saved model")
    predict.add_argument("model")
    predict.add_argument("data")
    predict.add_argument("--out", help="write predictions here (default: standard output)")
    predict.set_defaults(fn=_cmd_predict)
    bench = sub.add_parser("bench", help="run bench suites (from a source checkout)")
    bench.add_argument("suites", nargs="*", help="suite names (default: all) and the bench "
                       "runner's options (--quick, --json F, --markdown F; see python -m bench -h)")
    bench.set_defaults(fn=_cmd_bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if args.command == "bench":
        # Every word after `bench` is the bench runner's own command line, options included.
        args.bench_argv = argv[argv.index("bench") + 1:]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    prog = f"fastnn {args.command}"
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, MemoryError) as e:
        # A user's mistake (a file, a value, a missing package): the message is the answer.
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a defect of fastnn: still one line, with the way to see more
        if os.environ.get("FASTNN_TRACEBACK"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(e)} (please report it; "
              f"FASTNN_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__
