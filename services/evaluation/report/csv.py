"""The report's tables as CSV files, one a table (UTF-8 with a BOM: spreadsheets open the
Chinese names right)."""

from __future__ import annotations

import csv
from pathlib import Path

from services.evaluation.report.model import Report
from services.evaluation.report.tables import tables


def write_csv(report: Report, out: Path) -> list[Path]:
    written = []
    for table in tables(report):
        path = out / f"{table.slug}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(table.headers)
            writer.writerows(table.rows)
        written.append(path)
    return written
