"""Generate a synthetic CSV (`id,name,value`, optionally wider) for tests and benchmarks.

The options are those of the old service's generator (`--rows`, `--out`, `--min`, `--max`,
`--names`, `--seed`) plus `--columns` for wider files. Rows are built and written in blocks with
numpy and polars, so memory stays flat whatever the row count (about 20M rows a minute on one core
for 3 columns).

    python scripts/generate_csv.py -n 1000000 -o data/inbox/orders.csv
    python scripts/generate_csv.py -n 10 --names alice,bob --min 1 --max 5
    python scripts/generate_csv.py -n 2000000 --columns 10 -o bench-out/wide.csv

Columns:
  id        1, 2, 3, ... (unique, ascending)
  name      drawn uniformly from `--names`: either a comma-separated list of names
            (`--names alice,bob,carol`) or a number N of distinct names (`--names 500`), taken
            from a pool of given names and suffixed `_2`, `_3`, ... once the pool is used up
  value     uniform in [--min, --max], written with two decimals (a double precision column)
  extra     with `--columns N` (N > 3), columns 4..N cycle through int (bigint), float (4
            decimals), short text (6-letter codes) and date (ISO, 2000-01-01 to 2030-12-31);
            named `int_4`, `float_5`, `text_6`, `date_7`, `int_8`, ...

The same `--seed` gives the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

BLOCK_ROWS = 250_000
BASE_COLUMNS = ["id", "name", "value"]
EXTRA_KINDS = ["int", "float", "text", "date"]
TEXT_POOL_SIZE = 10_000
DATE_START = np.datetime64("2000-01-01")
DATE_DAYS = int((np.datetime64("2030-12-31") - DATE_START).astype(int)) + 1
# fmt: off
GIVEN_NAMES = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl",
    "Laura", "Mallory", "Niaj", "Olivia", "Peggy", "Quentin", "Rupert", "Sybil", "Trent", "Ursula",
    "Victor", "Walter", "Xena", "Yvonne", "Zoe", "Amir", "Bea", "Chen", "Dmitri", "Elena",
    "Fatima", "Gustav", "Hana", "Ines", "Jamal", "Kenji", "Lucia", "Mateo", "Nadia", "Omar",
    "Priya", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen", "Yusuf", "Zara",
]
# fmt: on


def parse_names(spec: str) -> list[str]:
    """`--names`: a comma-separated list, or a count of distinct names to make up."""
    if spec.strip().isdigit():
        count = int(spec)
        if count < 1:
            raise argparse.ArgumentTypeError("--names needs at least one name")
        pool = len(GIVEN_NAMES)
        return [
            GIVEN_NAMES[i % pool] if i < pool else f"{GIVEN_NAMES[i % pool]}_{i // pool + 1}"
            for i in range(count)
        ]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--names is empty")
    return names


def column_names(columns: int) -> list[str]:
    extra = [f"{EXTRA_KINDS[(i - 4) % len(EXTRA_KINDS)]}_{i}" for i in range(4, columns + 1)]
    return BASE_COLUMNS + extra


def blocks(
    rows: int,
    *,
    columns: int,
    names: list[str],
    low: float,
    high: float,
    seed: int,
    block_rows: int = BLOCK_ROWS,
) -> Iterator[pl.DataFrame]:
    """The file's rows as frames of at most `block_rows` rows, in order."""
    rng = np.random.default_rng(seed)
    name_pool = pl.Series("name", names, dtype=pl.String)
    text_pool = pl.Series(
        "text",
        [
            bytes(code).decode("ascii")
            for code in rng.integers(ord("a"), ord("z") + 1, (TEXT_POOL_SIZE, 6), dtype=np.uint8)
        ],
    )
    header = column_names(columns)
    for start in range(0, rows, block_rows):
        n = min(block_rows, rows - start)
        data: dict[str, pl.Series] = {
            "id": pl.Series("id", np.arange(start + 1, start + n + 1, dtype=np.int64)),
            "name": name_pool.gather(rng.integers(0, len(names), n)),
            "value": pl.Series("value", np.round(rng.uniform(low, high, n), 2)),
        }
        for name in header[3:]:
            kind = name.split("_", 1)[0]
            if kind == "int":
                data[name] = pl.Series(name, rng.integers(-1_000_000, 1_000_000, n))
            elif kind == "float":
                data[name] = pl.Series(name, np.round(rng.normal(0.0, 1000.0, n), 4))
            elif kind == "text":
                data[name] = text_pool.gather(rng.integers(0, TEXT_POOL_SIZE, n))
            else:
                days = rng.integers(0, DATE_DAYS, n).astype("timedelta64[D]")
                data[name] = pl.Series(name, DATE_START + days)
        yield pl.DataFrame([series.alias(name) for name, series in data.items()])


def write_csv(target: BinaryIO, frames: Iterator[pl.DataFrame], header: list[str]) -> None:
    target.write((",".join(header) + "\n").encode())
    for frame in frames:
        frame.write_csv(target, include_header=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-n", "--rows", type=int, default=1000, help="data rows (default 1000)")
    parser.add_argument("-o", "--out", default="-", help="output file; '-' is stdout (default)")
    parser.add_argument("--min", type=float, default=0.0, help="smallest value (default 0)")
    parser.add_argument("--max", type=float, default=1000.0, help="largest value (default 1000)")
    parser.add_argument(
        "--names",
        type=parse_names,
        default=parse_names("50"),
        help="comma-separated names to draw from, or a number of distinct names (default 50)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--columns", type=int, default=3, help="total columns, at least 3 (default 3)"
    )
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be 0 or more")
    if args.columns < 3:
        parser.error("--columns must be at least 3 (id, name, value)")
    if args.min > args.max:
        parser.error("--min must not be above --max")
    frames = blocks(
        args.rows,
        columns=args.columns,
        names=args.names,
        low=args.min,
        high=args.max,
        seed=args.seed,
    )
    header = column_names(args.columns)
    if args.out == "-":
        write_csv(sys.stdout.buffer, frames, header)
        sys.stdout.buffer.flush()
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")  # the inbox sensor ignores `.part` files
    with partial.open("wb") as target:
        write_csv(target, frames, header)
    partial.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
