"""Plain-text table that prints each row as soon as it is measured."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = ""        # format spec applied to the value, e.g. ".1f"
    width: int = 0       # minimum width; the header may widen it

    def render(self, value) -> str:
        if value is None:
            return "-"
        if isinstance(value, str):  # "n/a", a note: shown as is whatever the format
            return value
        return format(value, self.fmt) if self.fmt else str(value)


class Table:
    """Widths are fixed up front so rows can be streamed during a long run."""

    def __init__(self, columns: list[Column], stream=None):
        self.columns = columns
        self.stream = stream or sys.stdout
        self.widths = [max(c.width, len(c.header)) for c in columns]

    def _line(self, cells: list[str]) -> str:
        # First column (the shape label) reads best left-aligned, numbers right.
        parts = [cells[0].ljust(self.widths[0])]
        parts += [cell.rjust(w) for cell, w in zip(cells[1:], self.widths[1:])]
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        print(self._line([c.header for c in self.columns]), file=self.stream)
        print("  ".join("-" * w for w in self.widths), file=self.stream)

    def row(self, values: dict) -> None:
        cells = [c.render(values.get(c.key)) for c in self.columns]
        print(self._line(cells), file=self.stream, flush=True)


def markdown(columns: list[Column], rows: list[dict], title: str | None = None) -> str:
    """The same table as GitHub markdown (for bench/RESULTS.md); "|" inside a cell is escaped."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(cell(c.header) for c in columns) + " |")
    lines.append("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(columns))) + " |")
    for row in rows:
        lines.append("| " + " | ".join(cell(c.render(row.get(c.key))) for c in columns) + " |")
    return "\n".join(lines) + "\n"
