"""Test files with the awkward parts of real CSV: quoted commas, doubled quotes, newlines."""

from __future__ import annotations

import csv
from pathlib import Path


def order_row(i: int) -> list[object]:
    name = f"name {i}, with comma" if i % 3 else f'say "{i}"\nagain'
    return [i, name, i * 0.5]


def write_orders(path: Path, rows: int, *, start: int = 0) -> Path:
    """A CSV `id,name,value` with `rows` rows; every third name holds quotes and a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "value"])
        writer.writerows(order_row(i) for i in range(start, start + rows))
    return path
