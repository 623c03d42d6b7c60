"""Reading tables for the command line (`fastnn train` / `fastnn predict`): CSV with a header,
.npy (a 2-D array) or .npz (arrays X and y). No pandas needed.

Every problem in a value is reported where a user finds it in the file: the line (1-based,
counting the header as line 1), the column (1-based) and the column's name."""

import csv
import os
import sys

import numpy as np

# What spreadsheets and pandas write for "no value" (pandas' default na_values, lower-cased).
_MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "<na>", "#n/a", "#na",
                      "nat"})

# pandas.DataFrame.to_csv writes the index as a first column with an empty header; a CSV that
# went through pandas twice calls it "Unnamed: 0".
_INDEX_HEADERS = ("", "Unnamed: 0")


def _notice(message):
    print(f"note: {message}", file=sys.stderr)


class Table:
    """Named columns read from a file, with where each value came from.

    columns: NumPy arrays, the text of each field for a CSV, numbers for .npy/.npz.
    lines: the file line of each row (CSV), or None (arrays: rows are counted from 1).
    positions: the 1-based column number of each column in the file."""

    def __init__(self, path, names, columns, lines=None, positions=None):
        self.path = path
        self.names = names
        self.columns = columns
        self.lines = lines
        self.positions = positions if positions is not None else list(range(1, len(names) + 1))

    def __len__(self):
        return len(self.columns[0]) if self.columns else 0

    def where(self, j, i):
        row = f"line {self.lines[i]}" if self.lines is not None else f"row {i + 1}"
        return f"{self.path}: {row}, column {self.positions[j]} ({self.names[j]!r})"

    def index_of(self, target):
        """Column number of `target`: a column name, or else a 0-based index."""
        if target in self.names:
            return self.names.index(target)
        try:
            j = int(target)
        except ValueError:
            raise ValueError(f"--target: no column {target!r}; columns are {self.names}") \
                from None
        if not 0 <= j < len(self.names):
            raise ValueError(f"--target: column index {j} out of range: the table has "
                             f"{len(self.names)} columns")
        return j

    def _missing_at(self, j):
        """Row of the first missing value of column j, or None."""
        col = self.columns[j]
        if col.dtype.kind == "f":
            bad = np.isnan(col)
        elif col.dtype.kind in "US":
            bad = np.isin(np.char.lower(col.astype(str)), list(_MISSING))
        else:
            return None
        return int(np.flatnonzero(bad)[0]) if bad.any() else None

    def _refuse_missing(self, j):
        i = self._missing_at(j)
        if i is not None:
            raise ValueError(f"{self.where(j, i)}: missing value; fill in or drop the rows "
                             f"with missing values")

    def is_numeric(self, j):
        """Whether every value of column j is a number (missing values aside)."""
        col = self.columns[j]
        if col.dtype.kind in "iubf":
            return True
        present = [v for v in col if v.lower() not in _MISSING]
        try:
            np.asarray(present, dtype=np.float64)
        except ValueError:
            return False
        return True

    def numbers(self, j, role="feature columns"):
        """Column j as float64; a missing, non-numeric or infinite value is a ValueError that
        says where it is (role: what must be numeric, for the message)."""
        self._refuse_missing(j)
        col = self.columns[j]
        if col.dtype.kind in "iub":
            return col.astype(np.float64)
        if col.dtype.kind == "f":
            values = col.astype(np.float64)
        else:
            try:
                values = np.asarray(col, dtype=np.float64)
            except ValueError:
                values = None
            if values is None:  # find the first field that is not a number, to name it
                for i, text in enumerate(col):
                    try:
                        float(text)
                    except ValueError:
                        raise ValueError(f"{self.where(j, i)}: {str(text)!r} is not a number "
                                         f"({role} must be numeric)") from None
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self.where(j, i)}: {str(col[i])!r} is not a finite number")
        return values

    def features(self, cols):
        """The columns `cols` as a float32 (rows, features) array."""
        return np.column_stack([self.numbers(j) for j in cols]).astype(np.float32)

    def text(self, j):
        """Column j as the values were written (str), missing values refused: class labels."""
        self._refuse_missing(j)
        col = self.columns[j]
        return col if col.dtype.kind == "U" else np.array([str(v) for v in col])


def read_table(path, notice=_notice):
    """A Table from a CSV file with a header, a 2-D .npy array or an .npz with X (and y)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        a = np.load(path, allow_pickle=False)
        if a.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {a.shape}")
        return Table(path, [str(i) for i in range(a.shape[1])],
                     [a[:, i] for i in range(a.shape[1])])
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z:
                raise ValueError(f"{path}: expected arrays 'X' (and 'y' to train), found "
                                 f"{sorted(z.files)}")
            X = z["X"]
            if X.ndim != 2:
                raise ValueError(f"{path}: expected X to be a 2-D array, got shape {X.shape}")
            cols = [X[:, i] for i in range(X.shape[1])]
            names = [str(i) for i in range(X.shape[1])]
            if "y" in z:
                y = z["y"]
                if y.shape != (len(X),):
                    raise ValueError(f"{path}: expected y of shape ({len(X)},) to match X, "
                                     f"got {y.shape}")
                cols.append(y)
                names.append("y")
        return Table(path, names, cols)
    return _read_csv(path, notice)


def _read_csv(path, notice):
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first name.
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            body, lines = [], []
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, "
                                     f"the header has {len(header)}")
                body.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") \
            from None
    except csv.Error as e:
        raise ValueError(f"{path}: not a readable CSV file ({e})") from None
    if header is None or not body:
        raise ValueError(f"{path}: expected a header line and at least one row of data")
    names = [h.strip() for h in header]
    cols = [np.array([r[j].strip() for r in body]) for j in range(len(names))]
    positions = list(range(1, len(names) + 1))
    if names[0] in _INDEX_HEADERS and len(names) > 1 and _row_labels(cols[0]):
        notice(f"{path}: column 1 has no name and a different value on every row: taken as "
               f"the row index that pandas.DataFrame.to_csv writes, not as a feature")
        names, cols, positions = names[1:], cols[1:], positions[1:]
    seen = {}
    for j, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{path}: the header names columns {seen[name]} and "
                             f"{positions[j]} both {name!r}")
        seen[name] = positions[j]
    return Table(path, names, cols, lines=lines, positions=positions)


def _row_labels(col):
    """Whether a column looks like an index: present and different on every row."""
    return len(set(col.tolist())) == len(col) and not np.isin(np.char.lower(col),
                                                              list(_MISSING)).any()


def target(table, j, task):
    """(task, y, classes) for the column j to predict.

    task "auto": text labels, or at most 50 distinct whole numbers, mean classification.
    Classification gives y as class indices 0..k-1 and classes as the labels' text as written in
    the file (sorted, numerically when they are numbers); regression gives y as float32 and
    classes None."""
    numeric = table.is_numeric(j)
    if task == "auto":
        task = "classification"
        if numeric:
            values = table.numbers(j, "the target")
            if not np.all(values == np.round(values)) or len(np.unique(values)) > 50:
                task = "regression"
    if task == "regression":
        return task, table.numbers(j, "a regression target").astype(np.float32), None
    text = table.text(j)
    if numeric:
        _, first, y = np.unique(table.numbers(j, "the target"), return_index=True,
                                return_inverse=True)
        classes = [str(text[i]) for i in first]
    else:
        names, y = np.unique(text, return_inverse=True)
        classes = names.tolist()
    return task, y.reshape(-1).astype(np.int64), classes
