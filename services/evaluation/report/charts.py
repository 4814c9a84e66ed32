"""The report's charts (matplotlib, Agg: no display). Labels are codes and the Latin part
of names: matplotlib's default font has no CJK glyphs."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib import colormaps  # after choosing the backend
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as Patch

from gridloop.citypack import CityPack
from services.evaluation.report.model import Report, Volume

Chart = Callable[[Report, CityPack], Figure]


def _bars(volumes: list[Volume], title: str, top: int = 15) -> Figure:
    shown = volumes[:top][::-1]  # the largest on top
    fig = Figure(figsize=(7, 0.35 * len(shown) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh([v.label for v in shown], [v.cases for v in shown], color="#4878a8", label="cases")
    ax.barh([v.label for v in shown], [v.closed for v in shown], color="#8cc084", label="closed")
    ax.set_title(title if len(volumes) <= top else f"{title}: the {top} most")
    ax.set_xlabel("cases")
    fig.legend(loc="outside lower center", ncol=2, frameon=False)  # below, not over the bars
    return fig


def classes_chart(report: Report, pack: CityPack) -> Figure:
    return _bars(report.by_class, "Cases by class (C = component, E = event)")


def streets_chart(report: Report, pack: CityPack) -> Figure:
    return _bars(report.by_street, "Cases by street")


def _map_shape(pack: CityPack) -> tuple[float, float]:
    """The district's height over width on the ground (a degree of longitude is shorter)."""
    boxes = [pack.polygon(g.code).bounds for g in pack.grids]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return (y1 - y0) / max((x1 - x0) * math.cos(math.radians((y0 + y1) / 2)), 1e-9), (y0 + y1) / 2


def density_map(report: Report, pack: CityPack) -> Figure:
    """The grids shaded by cases per km², each labelled with its community and grid digits."""
    aspect, mid_lat = _map_shape(pack)
    wide = aspect < 0.6  # a strip of a district: the colour scale goes underneath
    fig = Figure(figsize=(7, min(8.0, max(2.6, 6 * aspect + (1.8 if wide else 0.8)))))
    ax = fig.subplots()
    peak = max((g.per_km2 for g in report.grids), default=0.0) or 1.0
    norm, cmap = Normalize(0, peak), colormaps["OrRd"]
    for g in report.grids:
        polygon = pack.polygon(g.code)
        ax.add_patch(
            Patch(
                list(polygon.exterior.coords),
                facecolor=cmap(norm(g.per_km2)),
                edgecolor="#555555",
                linewidth=0.6,
            )
        )
        if len(report.grids) <= 60:
            centre = polygon.representative_point()
            ax.annotate(g.code[-6:], (centre.x, centre.y), ha="center", va="center", fontsize=6)
    ax.autoscale_view()
    ax.set_aspect(1 / math.cos(math.radians(mid_lat)))  # metres the same both ways
    ax.ticklabel_format(useOffset=False)
    ax.set_title("Cases per km² by grid")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    scale = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(
        scale,
        ax=ax,
        label="cases per km²",
        orientation="horizontal" if wide else "vertical",
        shrink=0.8,
        pad=0.3 if wide else 0.05,
    )
    fig.tight_layout()
    return fig


def on_time_chart(report: Report, pack: CityPack) -> Figure:
    """On-time handling and closure by department, in per cent."""
    rows = report.on_time[::-1]  # the first code on top
    fig = Figure(figsize=(7, 0.45 * len(rows) + 1.7), layout="constrained")
    ax = fig.subplots()
    at = list(range(len(rows)))
    for offset, name, pick in ((0.2, "handling", 0), (-0.2, "closure", 1)):
        values = [(o.handling, o.closure)[pick] for o in rows]
        rates = [100 * (r.value or 0) if r else 0 for r in values]
        ax.barh([y + offset for y in at], rates, height=0.4, label=f"on-time {name}")
    ax.set_yticks(at, [o.code for o in rows])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% on time")
    ax.set_title("On time by department")
    fig.legend(loc="outside lower center", ncol=2, frameon=False)  # below, not over the bars
    return fig


CHARTS: dict[str, Chart] = {
    "classes": classes_chart,
    "streets": streets_chart,
    "density": density_map,
    "on_time": on_time_chart,
}


def svg(fig: Figure) -> str:
    """Inline SVG, without the XML prolog (it goes inside HTML)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    text = out.getvalue()
    return text[text.index("<svg") :]


def png(fig: Figure, dpi: int = 150) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight")
    return out.getvalue()
