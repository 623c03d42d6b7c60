"""`python -m fastnn train` / `predict` on CSV and .npz tables."""

import subprocess
import sys

import numpy as np
import pytest

import fastnn


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_train_and_predict_csv_classification(tmp_path, rng):
    X = rng.standard_normal((400, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{lab}" for r, lab in zip(X, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    out = run("train", "t.csv", "--target", "label", "--hidden", "16", "--epochs", "40",
              "--out", "m.fastnn", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "classification" in out.stdout and (tmp_path / "m.fastnn").exists()
    out = run("predict", "m.fastnn", "t.csv", "--out", "p.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pred = (tmp_path / "p.csv").read_text().split()[1:]
    assert len(pred) == 400 and set(pred) <= {"yes", "no"}
    assert np.mean(np.array(pred) == y) > 0.9


def test_train_and_predict_npz_regression(tmp_path, rng):
    X = rng.standard_normal((300, 4)).astype(np.float32)
    y = X @ np.array([1.0, -1.0, 0.5, 2.0], np.float32) + 0.3
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = run("train", "d.npz", "--task", "regression", "--hidden", "32", "--epochs", "60",
              "--lr", "0.01", "--quiet", "--out", "r.fastnn", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run("predict", "r.fastnn", "d.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pred = np.array(out.stdout.split()[1:], float)
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.3


def test_cli_errors_are_messages(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    out = run("train", "t.csv", "--target", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "no column 'nope'" in out.stderr
    out = run("predict", "missing.fastnn", "t.csv", cwd=tmp_path)
    assert out.returncode == 2 and "error:" in out.stderr


# --- real CSV files: pandas' index column, sorted rows, labels, missing values, errors ----------

def cli(capsys, *args):
    """main() in this process (quicker than a subprocess): (exit status, stdout, stderr)."""
    from fastnn.__main__ import main

    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse: --version, --help and bad command lines
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def blobs_sorted_by_class(rng, labels, n_per_class=60):
    """Three well-separated 2-D clusters, the rows sorted by class as data files often are."""
    centres = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    X = np.concatenate([c + 0.5 * rng.standard_normal((n_per_class, 2)) for c in centres])
    y = np.repeat(np.array(labels, dtype=object), n_per_class)
    return X, y


def write_csv_with_index(path, header, X, y):
    """What pandas.DataFrame.to_csv writes: an unnamed first column with the row numbers."""
    lines = ["," + ",".join(header)]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in row) + f",{lab}"
              for i, (row, lab) in enumerate(zip(X, y))]
    path.write_text("\n".join(lines) + "\n")


def test_index_column_dropped_and_validation_split_stratified(tmp_path, rng, capsys,
                                                             monkeypatch):
    # Keras's last-fraction rule on class-sorted rows would hold out "blue" entirely; the index
    # column, taken as a feature, would tell the classes apart by row number.
    monkeypatch.chdir(tmp_path)
    X, y = blobs_sorted_by_class(rng, ["red", "green", "blue"])
    write_csv_with_index(tmp_path / "t.csv", ["a", "b", "colour"], X, y)
    rc, out, err = cli(capsys, "train", "t.csv", "--target", "colour", "--hidden", "16",
                       "--epochs", "30", "--validation-split", "0.34", "--quiet")
    assert rc == 0, err
    assert "column 1 has no name" in err and "index" in err
    assert "2 features" in out and "stratified" in out
    rc, out, err = cli(capsys, "predict", "model.fastnn", "t.csv")
    assert rc == 0, err
    pred = np.array(out.split()[1:])
    assert set(pred) == {"red", "green", "blue"}
    assert np.mean(pred == y) > 0.95


def test_validation_split_is_seeded(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = blobs_sorted_by_class(rng, ["a", "b", "c"], n_per_class=20)
    write_csv_with_index(tmp_path / "t.csv", ["x1", "x2", "y"], X, y)
    runs = []
    for out_file in ("m1.fastnn", "m2.fastnn"):
        rc, _, err = cli(capsys, "train", "t.csv", "--hidden", "4", "--epochs", "2",
                         "--validation-split", "0.25", "--seed", "3", "--quiet",
                         "--out", out_file)
        assert rc == 0, err
        runs.append(fastnn.load(out_file).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_integer_labels_print_as_written(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = blobs_sorted_by_class(rng, [3, 10, 20])
    lines = ["u,v,grade"] + [f"{a},{b},{lab}" for (a, b), lab in zip(X, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    rc, out, err = cli(capsys, "train", "t.csv", "--target", "grade", "--hidden", "16",
                       "--epochs", "30", "--quiet")
    assert rc == 0, err
    assert "classification" in out and err == ""  # a named first column is a feature
    rc, out, err = cli(capsys, "predict", "model.fastnn", "t.csv")
    pred = out.split()[1:]
    assert set(pred) == {"3", "10", "20"}
    assert np.mean(np.array(pred) == y.astype(str)) > 0.95


@pytest.mark.parametrize("blank", ["", "NA", "nan"])
def test_missing_value_reported_where_it_is(tmp_path, capsys, monkeypatch, blank):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(f"a,b,y\n1,2,0\n3,4,1\n5,{blank},0\n7,8,1\n")
    rc, out, err = cli(capsys, "train", "t.csv", "--target", "y", "--quiet")
    assert rc == 2 and out == ""
    assert err.strip() == ("fastnn train: error: t.csv: line 4, column 2 ('b'): missing value; "
                           "fill in or drop the rows with missing values")


def test_missing_label_and_missing_value_behind_an_index(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(",a,y\n0,1,cat\n1,2,\n2,3,dog\n")
    rc, _, err = cli(capsys, "train", "t.csv", "--target", "y", "--quiet")
    assert rc == 2 and "line 3, column 3 ('y'): missing value" in err


def test_version(capsys):
    rc, out, _ = cli(capsys, "--version")
    assert rc == 0 and out.strip() == f"fastnn {fastnn.__version__}"


USER_ERRORS = [
    (["train", "t.csv", "--target", "nope"], "no column 'nope'"),
    (["train", "t.csv", "--target", "9"], "out of range"),
    (["train", "t.csv"], "--target: name the column"),
    (["train", "t.csv", "--target", "a", "--hidden", "64,x"], "--hidden"),
    (["train", "t.csv", "--target", "a", "--hidden", "0"], "--hidden"),
    (["train", "t.csv", "--target", "a", "--epochs", "-1"], "--epochs"),
    (["train", "t.csv", "--target", "a", "--batch-size", "0"], "--batch-size"),
    (["train", "t.csv", "--target", "a", "--lr", "nan"], "--lr"),
    (["train", "t.csv", "--target", "a", "--validation-split", "1.5"], "--validation-split"),
    (["train", "t.csv", "--target", "a", "--validation-split", "0.9"], "--validation-split"),
    (["train", "text.csv", "--target", "a"], "'x' is not a number"),
    (["train", "text.csv", "--target", "b", "--task", "regression"], "not a number"),
    (["train", "one.csv", "--target", "a"], "no feature columns"),
    (["train", "empty.csv", "--target", "a"], "header line and at least one row"),
    (["train", "ragged.csv", "--target", "a"], "line 3 has 3 fields"),
    (["train", "dup.csv", "--target", "a"], "both 'b'"),
    (["train", "inf.csv", "--target", "a"], "'inf' is not a finite number"),
    (["train", "missing.csv", "--target", "a"], "No such file"),
    (["train", "t.csv", "--target", "a", "--bogus"], "unrecognized arguments"),
    (["predict", "t.csv", "t.csv"], "not a safetensors file"),
    (["predict", "missing.fastnn", "t.csv"], "No such file"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("args,message", USER_ERRORS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_user_errors_are_one_line_with_status_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    (tmp_path / "text.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "one.csv").write_text("a\n1\n2\n")
    (tmp_path / "empty.csv").write_text("a,b\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp_path / "dup.csv").write_text("a,b,b\n1,2,3\n")
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n0,inf\n")
    rc, _, err = cli(capsys, *args)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("fastnn"), err
    assert message in err


def test_predict_names_the_missing_feature_columns(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = blobs_sorted_by_class(rng, [0, 1, 2], n_per_class=10)
    lines = ["u,v,k"] + [f"{a},{b},{lab}" for (a, b), lab in zip(X, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "other.csv").write_text("u,w\n1,2\n")
    assert cli(capsys, "train", "t.csv", "--target", "k", "--epochs", "1", "--quiet")[0] == 0
    rc, _, err = cli(capsys, "predict", "model.fastnn", "other.csv")
    assert rc == 2 and "missing feature columns ['v']" in err


def test_pandas_iris_with_its_index(tmp_path, capsys, monkeypatch):
    pd = pytest.importorskip("pandas")
    datasets = pytest.importorskip("sklearn.datasets")
    monkeypatch.chdir(tmp_path)
    iris = datasets.load_iris()
    frame = pd.DataFrame(iris.data, columns=["sl", "sw", "pl", "pw"])
    frame["species"] = iris.target_names[iris.target]  # sorted by class, as the data set is
    frame.to_csv(tmp_path / "iris.csv")
    rc, out, err = cli(capsys, "train", "iris.csv", "--target", "species", "--hidden", "16",
                       "--epochs", "60", "--lr", "0.01", "--validation-split", "0.34",
                       "--quiet")
    assert rc == 0, err
    assert "4 features" in out and "index" in err
    rc, out, err = cli(capsys, "predict", "model.fastnn", "iris.csv")
    pred = np.array(out.split()[1:])
    assert set(pred) == {"setosa", "versicolor", "virginica"}
    assert np.mean(pred == frame["species"].to_numpy()) > 0.9
    frame.loc[10, "pw"] = np.nan
    frame.to_csv(tmp_path / "gap.csv")
    rc, _, err = cli(capsys, "predict", "model.fastnn", "gap.csv")
    assert rc == 2 and "line 12, column 5 ('pw'): missing value" in err


def test_one_column_csv(tmp_path, capsys, monkeypatch):
    # One input feature: a model with input_dim=1 (the engine keeps a 1-row weight 2-D).
    monkeypatch.chdir(tmp_path)
    x = np.linspace(-3, 3, 200)
    lines = ["x,y"] + [f"{v},{np.sin(v)}" for v in x]
    (tmp_path / "sin.csv").write_text("\n".join(lines) + "\n")
    rc, out, err = cli(capsys, "train", "sin.csv", "--target", "y", "--hidden", "32",
                       "--epochs", "5", "--quiet")
    assert rc == 0, err
    assert "regression: 200 samples, 1 features" in out
    rc, out, err = cli(capsys, "predict", "model.fastnn", "sin.csv")
    assert rc == 0, err
    assert len(out.split()) == 201


def test_demo_without_its_extras(tmp_path):
    # matplotlib and scikit-learn are optional: the demo says what it skipped and why.
    code = ("import sys\n"
            "for name in ('matplotlib', 'sklearn', 'sklearn.datasets'):\n"
            "    sys.modules[name] = None  # makes `import name` raise ImportError\n"
            "from fastnn.__main__ import main\n"
            "sys.exit(main(['demo', '--quick', '--quiet', '--out', 'p.png']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "matplotlib is not installed, so no picture" in out.stdout
    assert "2. digits: skipped, scikit-learn is not installed" in out.stdout
    assert "'.[demo]'" in out.stdout and not (tmp_path / "p.png").exists()


def test_a_defect_is_one_line_too(capsys, monkeypatch):
    # Not the user's mistake: still no traceback, but status 1 and how to see one.
    from fastnn.cli import demo

    def broken(**kwargs):
        raise KeyError("loss")

    monkeypatch.setattr(demo, "run", broken)
    rc, _, err = cli(capsys, "demo", "--quick")
    assert rc == 1
    assert err.strip() == ("fastnn demo: internal error: KeyError: 'loss' (please report it; "
                           "FASTNN_TRACEBACK=1 shows the traceback)")
    monkeypatch.setenv("FASTNN_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli(capsys, "demo", "--quick")


def test_bench_outside_a_checkout_says_where_the_bench_lives(capsys, monkeypatch):
    """An installed (non-editable) fastnn has no bench/: a one-line answer, status 2."""
    from fastnn import cli as cli_main

    monkeypatch.setattr(cli_main, "_bench_checkout", lambda: None)
    rc, out, err = cli(capsys, "bench", "gemm")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "bench/ folder of the fastnn source repository" in err and "python -m bench" in err


def test_bench_checkout_is_found_from_the_package_not_the_working_directory(tmp_path,
                                                                          monkeypatch):
    from pathlib import Path

    from fastnn import cli as cli_main

    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    # An editable install runs the checkout's own python/fastnn; an installed copy (a venv, which
    # may itself sit inside the checkout) has no bench/ beside it.
    editable = Path(fastnn.__file__).resolve().parent == repo / "python" / "fastnn"
    assert cli_main._bench_checkout() == (repo if editable else None)


def test_bench_passes_its_options_through_to_the_suites(capsys, monkeypatch, tmp_path):
    """`python -m fastnn bench infer --quick --markdown F` means what `python -m bench ...` means:
    every word after `bench` is the bench runner's, options included."""
    import sys
    import types

    from fastnn import cli as cli_main

    seen = []
    fake_run = types.ModuleType("bench.run")
    fake_run.main = lambda argv: seen.append(list(argv)) or 0
    fake_pkg = types.ModuleType("bench")
    fake_pkg.run = fake_run
    monkeypatch.setitem(sys.modules, "bench", fake_pkg)
    monkeypatch.setitem(sys.modules, "bench.run", fake_run)
    monkeypatch.setattr(cli_main, "_bench_checkout", lambda: tmp_path)
    rc, _, _ = cli(capsys, "bench", "--markdown", "out.md", "infer", "--quick")
    assert rc == 0
    assert seen == [["--markdown", "out.md", "infer", "--quick"]]
