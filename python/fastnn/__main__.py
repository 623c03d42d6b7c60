"""`python -m fastnn` (and the `fastnn` console script): info, demo, train, predict, bench."""

import argparse
import sys


def _cmd_info(args):
    import fastnn

    fastnn.show_config(print_out=True)
    return 0


def _cmd_demo(args):
    from fastnn import _demo

    return _demo.run(quick=args.quick, out=args.out, verbose=0 if args.quiet else 1)


def _cmd_train(args):
    import numpy as np

    import fastnn
    from fastnn import _cli_data
    from fastnn.layers import Dense

    names, cols = _cli_data.read_table(args.data)
    X, y, feature_names = _cli_data.split_target(names, cols, args.target)
    if X is None:
        raise SystemExit("error: no feature columns besides the target")
    task = args.task
    if task == "auto":
        # Text labels, or a few distinct whole numbers, mean classes.
        whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.all(y == np.round(y)))
        task = "classification" if y.dtype.kind == "U" or (whole and len(np.unique(y)) <= 50) \
            else "regression"
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    Xs = (X - mean) / std
    hidden = [int(h) for h in args.hidden.split(",") if h.strip()] if args.hidden else []
    layers = [Dense(h, "relu") for h in hidden]
    meta = {"feature_names": feature_names, "mean": mean.tolist(), "std": std.tolist(),
            "task": task}
    if task == "classification":
        classes, yi = np.unique(y, return_inverse=True)
        layers.append(Dense(len(classes), "softmax"))
        loss, target, metrics = "softmax_cross_entropy", yi, ["accuracy"]
        meta["classes"] = classes.tolist()
    else:
        y = y.astype(np.float32)
        ymean, ystd = float(y.mean()), float(y.std() or 1.0)
        layers.append(Dense(1))
        loss, target, metrics = "mse", (y - ymean) / ystd, ["mae"]
        meta["target_mean"], meta["target_std"] = ymean, ystd
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=args.seed)
    model.compile(loss, fastnn.optim.Adam(lr=args.lr), metrics=metrics)
    print(f"{task}: {len(X)} samples, {X.shape[1]} features, layers "
          f"{[X.shape[1]] + hidden + [layers[-1].units]}")
    model.fit(Xs, target, epochs=args.epochs, batch_size=args.batch_size,
              validation_split=args.validation_split, verbose=0 if args.quiet else 1)
    model.save(args.out, metadata={"cli": meta})
    print(f"saved {args.out}")
    return 0


def _cmd_predict(args):
    import numpy as np

    import fastnn
    from fastnn import _cli_data
    from fastnn.io import load_arrays

    model = fastnn.load(args.model)
    _, meta = load_arrays(args.model)
    cli = meta.get("cli")
    names, cols = _cli_data.read_table(args.data)
    if cli is None:
        X = np.column_stack(cols).astype(np.float32)
    else:
        X = _cli_data.features_only(names, cols, cli["feature_names"])
        X = (X - np.array(cli["mean"], np.float32)) / np.array(cli["std"], np.float32)
    p = model.predict(X)
    if cli and cli["task"] == "classification":
        out = np.array(cli["classes"])[p.argmax(axis=1)]
    elif cli:
        out = p[:, 0] * cli["target_std"] + cli["target_mean"]
    else:
        out = p
    lines = [str(v) if np.ndim(v) == 0 else ",".join(str(x) for x in v) for v in out]
    text = "prediction\n" + "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


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
    train = sub.add_parser("train", help="train an MLP on a table (CSV with a header, .npy, "
                           ".npz with X and y) and save it")
    train.add_argument("data")
    train.add_argument("--target", help="the column to predict (name or index; .npz: y)")
    train.add_argument("--hidden", default="128,64", help="hidden layer widths, e.g. 128,64")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--validation-split", type=float, default=0.0)
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
    bench.add_argument("suites", nargs="*", help="suite names (default: all)")
    bench.set_defaults(fn=_cmd_bench)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
