"""The report as one HTML file: the jinja2 template, charts as inline SVG."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from gridloop.citypack import CityPack
from services.evaluation.report.charts import CHARTS, svg
from services.evaluation.report.model import Report
from services.evaluation.report.tables import sections, tables

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render_html(report: Report, pack: CityPack) -> str:
    # The SVG comes from matplotlib, not from input: safe to insert as markup. The names in
    # it are drawn as paths (matplotlib's default), escaped by its SVG writer otherwise.
    shown = sections(report)
    wanted = {name for section in shown for name in section.charts}
    charts = {name: Markup(svg(CHARTS[name](report, pack))) for name in sorted(wanted)}
    return _env.get_template("report.html").render(
        report=report, sections=shown, charts=charts, csv=[t.slug for t in tables(report)]
    )


def write_html(report: Report, pack: CityPack, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render_html(report, pack), encoding="utf-8")
    return path
