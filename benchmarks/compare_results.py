"""Compare every CSV under two results folders, cell by cell, timings aside.

    python benchmarks/compare_results.py RESULTS_A RESULTS_B [--show N]

A refactor that must not change a number is checked by running a study before and after it and
comparing the two ``results/`` folders: tables and per-point CSVs alike. Cells are compared as
the text written (so 0.1 and 0.10000000000000002 differ), except in timing columns, whose names
contain seconds, time, duration or wall (or end in ``_s``/start with ``ns_``), and in tables
that are timings through and through (``TIMING_TABLES``, e.g. the activation cost benchmark).
MLflow's artifact copies (``mlartifacts/``) are left out.
Prints each file as identical or differing (with its first differing cells) and the files only
one side has; exits 1 when anything differs or is missing, 0 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from relulab.experiments.cost_step import COLUMNS as COST_STEP_COLUMNS

TIMING_COLUMN = re.compile(r"seconds|time|duration|wall|_s$|^ns_", re.IGNORECASE)
# Tables of measured times, every column derived from them (ratios, verdicts): compared by
# their header and their setting columns only.
TIMING_TABLES = {
    "cost.csv": (
        "device",
        "precision",
        "elements",
        "activation",
        "zero_grad",
        "implementation",
        "variant",
        "repeats",
        "threads",
        "compiled_operator",
    ),
    # The whole-step cost's columns up to its first timing (``seconds_per_step``).
    "cost_step.csv": tuple(COST_STEP_COLUMNS[: COST_STEP_COLUMNS.index("seconds_per_step")]),
}


# MLflow's copies of the CSVs, in folders named by run ids that differ from run to run (the
# MLflow content is compared through MLflow's client, not here).
SKIPPED_FOLDERS = ("mlartifacts",)


def csv_files(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.csv")
        if not set(path.relative_to(root).parts) & set(SKIPPED_FOLDERS)
    }


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return (rows[0] if rows else []), rows[1:]


def compared_columns(name: str, header: list[str]) -> list[int]:
    """The indices of ``header``'s columns that must be equal."""
    kept = TIMING_TABLES.get(Path(name).name)
    return [
        i
        for i, column in enumerate(header)
        if not TIMING_COLUMN.search(column) and (kept is None or column in kept)
    ]


def differences(name: str, a: Path, b: Path, show: int) -> list[str]:
    """Up to ``show`` descriptions of how two CSVs differ (none when they are equal)."""
    header_a, rows_a = read(a)
    header_b, rows_b = read(b)
    if header_a != header_b:
        only_a = [c for c in header_a if c not in header_b]
        only_b = [c for c in header_b if c not in header_a]
        return [f"header differs: only in A {only_a}, only in B {only_b} (or in another order)"]
    found = []
    if len(rows_a) != len(rows_b):
        found.append(f"{len(rows_a)} rows in A, {len(rows_b)} in B")
    columns = compared_columns(name, header_a)
    for number, (row_a, row_b) in enumerate(zip(rows_a, rows_b, strict=False), start=2):
        for i in columns:
            cell_a = row_a[i] if i < len(row_a) else "<missing>"
            cell_b = row_b[i] if i < len(row_b) else "<missing>"
            if cell_a != cell_b:
                found.append(f"line {number}, {header_a[i]}: {cell_a!r} != {cell_b!r}")
                if len(found) >= show:
                    return found
    return found


def compare(root_a: Path, root_b: Path, show: int = 5) -> int:
    files_a, files_b = csv_files(root_a), csv_files(root_b)
    failed = False
    identical = 0
    for name in sorted(files_a & files_b):
        found = differences(name, root_a / name, root_b / name, show)
        if found:
            failed = True
            print(f"DIFFERS    {name}")
            for line in found:
                print(f"           {line}")
        else:
            identical += 1
            header = read(root_a / name)[0]
            kept = set(compared_columns(name, header))
            ignored = [c for i, c in enumerate(header) if i not in kept]
            note = f" (not compared: {', '.join(ignored)})" if ignored else ""
            print(f"identical  {name}{note}")
    for name in sorted(files_a - files_b):
        failed = True
        print(f"ONLY IN A  {name}")
    for name in sorted(files_b - files_a):
        failed = True
        print(f"ONLY IN B  {name}")
    total = len(files_a | files_b)
    print(f"{identical} of {total} CSV files identical (timings aside)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first results folder")
    parser.add_argument("b", type=Path, help="the second results folder")
    parser.add_argument("--show", type=int, default=5, help="differing cells shown per file")
    args = parser.parse_args(argv)
    for root in (args.a, args.b):
        if not root.is_dir():
            parser.error(f"{root} is not a folder")
    return compare(args.a, args.b, args.show)


if __name__ == "__main__":
    sys.exit(main())
