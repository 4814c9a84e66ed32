"""The monthly report (月度分析报告): `gridloop report --period 2026-11`.

model.py (pure data from cases and scores) → tables.py, charts.py → html.py, pdf.py, csv.py;
collect.py reads MongoDB; run.py puts them together with progress.
"""
