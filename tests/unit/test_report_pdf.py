"""The PDF's charts fit the page whatever the district's shape."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from reportlab.lib.utils import ImageReader

from services.evaluation.report.charts import png
from services.evaluation.report.pdf import HEIGHT, WIDTH, _chart


def chart(width: float, height: float) -> bytes:
    fig = Figure(figsize=(width, height))
    fig.subplots().plot([0, 1], [0, 1])
    return png(fig, dpi=100)


def test_a_tall_chart_is_scaled_to_the_page_height_and_a_wide_one_to_its_width() -> None:
    tall, wide = chart(3, 14), chart(14, 3)
    assert _chart(tall).drawHeight <= HEIGHT + 0.01 and _chart(tall).drawWidth < WIDTH
    assert _chart(wide).drawWidth <= WIDTH + 0.01
    # Scaled, not squeezed: the picture keeps its proportions.
    pixels_w, pixels_h = ImageReader(io.BytesIO(tall)).getSize()
    drawn = _chart(tall)
    assert abs(drawn.drawHeight / drawn.drawWidth - pixels_h / pixels_w) < 0.01
