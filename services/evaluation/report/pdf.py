"""The report as PDF (reportlab platypus): a few pages, the sections of tables.sections().

Chinese text: a TrueType CJK font of the machine embedded (WenQuanYi Zen Hei, as the charts
use), else reportlab's built-in CJK CID font STSong-Light, which needs no file but is not
embedded (a viewer draws it with a font of its own). Charts are PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from matplotlib import font_manager
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from gridloop.citypack import CityPack
from services.evaluation.report.charts import CHARTS, CJK, png
from services.evaluation.report.model import Report
from services.evaluation.report.tables import Section, sections, tables
from services.evaluation.report.tables import Table as ReportTable


def _font() -> str:
    """The name of the font registered for the report's text."""
    if CJK:
        found = [f.fname for f in font_manager.fontManager.ttflist if f.name == CJK]
        path = min(found, default="")
        if path.lower().endswith((".ttf", ".ttc")):  # reportlab reads TrueType, not CFF
            try:
                pdfmetrics.registerFont(TTFont("ReportCJK", path, subfontIndex=0))
                return "ReportCJK"
            except TTFError:
                pass
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


FONT = _font()
_base = getSampleStyleSheet()
TITLE = ParagraphStyle("title", parent=_base["Title"], fontName=FONT, fontSize=16)
HEADING = ParagraphStyle("heading", parent=_base["Heading2"], fontName=FONT, spaceBefore=8)
SUBHEADING = ParagraphStyle("sub", parent=_base["Heading4"], fontName=FONT, spaceBefore=4)
BODY = ParagraphStyle("body", parent=_base["BodyText"], fontName=FONT, fontSize=8.5, leading=11)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)
WIDTH = A4[0] - 3 * cm
HEIGHT = A4[1] - 6 * cm  # a chart fits a page, the map of a tall district too
PAD = 3  # a cell's padding left and right, points
CHART_HEIGHT = HEIGHT / 2  # a section's chart leaves room for its table
KEEP_ROWS = 15  # a table this short is not split from its title (the leagues may be long)


def _text(value: Any, style: ParagraphStyle = CELL) -> Paragraph:
    # Paragraph reads a little markup: escape the pack's names and codes.
    return Paragraph(escape("" if value is None else str(value)), style)


def _natural(value: Any, words: bool = False) -> float:
    """Points a cell needs on one line (a header may wrap between its words), padding in."""
    text = "" if value is None else str(value)
    parts = text.split() if words else [text]
    widest = max((pdfmetrics.stringWidth(p, FONT, CELL.fontSize) for p in parts), default=0)
    return widest + 2 * PAD + 1


def _columns(table: ReportTable) -> list[float]:
    """Each column as wide as its widest cell; when they do not fit, the widest are
    narrowed alike (their text wraps) until the table fits the page."""
    natural = [
        max(_natural(h, words=True), *(_natural(row[i]) for row in table.rows))
        for i, h in enumerate(table.headers)
    ]
    if sum(natural) <= WIDTH:
        return [w * WIDTH / sum(natural) for w in natural]
    low, high = 0.0, max(natural)
    for _ in range(40):  # the cap at which the capped widths fill the page
        cap = (low + high) / 2
        low, high = (cap, high) if sum(min(w, cap) for w in natural) < WIDTH else (low, cap)
    return [min(w, low) for w in natural]


def _table(table: ReportTable, titled: bool) -> list[Any]:
    flow: list[Any] = [Paragraph(escape(table.title), SUBHEADING)] if titled else []
    if not table.rows:
        return [KeepTogether([*flow, _text("none this month", BODY)])]
    data = [[_text(h) for h in table.headers]] + [[_text(c) for c in row] for row in table.rows]
    grid = Table(data, repeatRows=1, colWidths=_columns(table))
    grid.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f3f7")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LEFTPADDING", (0, 0), (-1, -1), PAD),
                ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
            ]
        )
    )
    if len(table.rows) <= KEEP_ROWS:  # a short table's title stays on its page
        return [KeepTogether([*flow, grid]), Spacer(1, 0.3 * cm)]
    return [*flow, grid, Spacer(1, 0.3 * cm)]


def _chart(picture: bytes, height: float = HEIGHT) -> Image:
    image = Image(io.BytesIO(picture))
    scale = min(1.0, WIDTH / image.drawWidth, height / image.drawHeight)
    image.drawWidth, image.drawHeight = image.drawWidth * scale, image.drawHeight * scale
    return image


def _section(section: Section, report: Report, pack: CityPack) -> list[Any]:
    # reportlab sizes a PNG at a point a pixel: drawn at 150 dpi, each is scaled to fit.
    head = [Paragraph(escape(section.title), HEADING), _text(section.note, BODY)]
    charts = [_chart(png(CHARTS[name](report, pack)), CHART_HEIGHT) for name in section.charts]
    flow: list[Any] = [CondPageBreak(4 * cm), KeepTogether(head + charts)]
    for table in section.tables:
        flow += _table(table, titled=len(section.tables) > 1)
    return flow


def write_pdf(report: Report, pack: CityPack, out: Path) -> Path:
    path = out / "report.pdf"
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.5 * cm,
        title=f"{report.district} {report.period.label}",
    )
    flow: list[Any] = [
        Paragraph(escape(f"{report.district} — 月度分析报告 {report.period.label}"), TITLE),
        _text(
            f"{report.city} · {report.cases} cases reported, {report.closed} closed or settled"
            f" · as of {report.as_of.isoformat(timespec='minutes')}",
            BODY,
        ),
    ]
    for section in sections(report):
        flow += _section(section, report, pack)
    names = ", ".join(f"{t.slug}.csv" for t in tables(report))
    flow += [
        Paragraph(escape("完整数据 Full tables"), HEADING),
        _text(f"Every table in full, one CSV file each beside this report: {names}.", BODY),
    ]
    doc.build(flow)
    return path
