"""The report as PDF (reportlab platypus). Chinese names use reportlab's built-in CJK CID
font, so no system font is needed; charts are PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gridloop.citypack import CityPack
from services.evaluation.report.charts import CHARTS, png
from services.evaluation.report.model import Report
from services.evaluation.report.tables import Table as ReportTable
from services.evaluation.report.tables import tables

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
_base = getSampleStyleSheet()
TITLE = ParagraphStyle("title", parent=_base["Title"], fontName=FONT)
HEADING = ParagraphStyle("heading", parent=_base["Heading2"], fontName=FONT)
BODY = ParagraphStyle("body", parent=_base["BodyText"], fontName=FONT, fontSize=9)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)
WIDTH = A4[0] - 3 * cm
HEIGHT = A4[1] - 6 * cm  # a chart fits a page, the map of a tall district too


def _text(value: Any, style: ParagraphStyle = CELL) -> Paragraph:
    # Paragraph reads a little markup: escape the pack's names and codes.
    return Paragraph(escape("" if value is None else str(value)), style)


def _table(table: ReportTable) -> list[Any]:
    flow: list[Any] = [Paragraph(escape(table.title), HEADING)]
    if not table.rows:
        return [*flow, _text("none this month", BODY)]
    data = [[_text(h) for h in table.headers]] + [[_text(c) for c in row] for row in table.rows]
    grid = Table(data, repeatRows=1, colWidths=[WIDTH / len(table.headers)] * len(table.headers))
    grid.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f3f7")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return [*flow, grid, Spacer(1, 0.4 * cm)]


def _chart(picture: bytes) -> Image:
    image = Image(io.BytesIO(picture))
    scale = min(1.0, WIDTH / image.drawWidth, HEIGHT / image.drawHeight)
    image.drawWidth, image.drawHeight = image.drawWidth * scale, image.drawHeight * scale
    return image


def write_pdf(report: Report, pack: CityPack, out: Path) -> Path:
    path = out / "report.pdf"
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        title=f"{report.district} {report.period.label}",
    )
    flow: list[Any] = [
        Paragraph(escape(f"{report.district} — 月度分析报告 {report.period.label}"), TITLE),
        _text(
            f"{report.city} · {report.cases} cases reported, {report.closed} closed or settled"
            f" · as of {report.as_of.isoformat(timespec='minutes')}",
            BODY,
        ),
        Spacer(1, 0.4 * cm),
    ]
    # reportlab sizes a PNG at a point a pixel: drawn at 150 dpi, each is scaled to the page.
    for chart in CHARTS.values():
        flow += [_chart(png(chart(report, pack), dpi=150)), Spacer(1, 0.3 * cm)]
    for table in tables(report):
        flow += _table(table)
    doc.build(flow)
    return path
