"""The report's charts (matplotlib, Agg: no display), labelled with the pack's names.

Matplotlib's own font has no CJK glyphs: the first CJK font found on the machine draws them
(`CJK_FAMILIES`; `make tools` and the Dockerfile install WenQuanYi Zen Hei, Debian's
fonts-wqy-zenhei). Without one, a label keeps the Latin part of a bilingual name.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterable

import matplotlib

matplotlib.use("Agg")

from matplotlib import colormaps, font_manager  # after choosing the backend
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as Patch

from gridloop.citypack import CityPack
from services.evaluation.report.model import OTHERS, Report, Volume, latin

Chart = Callable[[Report, CityPack], Figure]
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Sans SC",
    "Droid Sans Fallback",
)


def cjk_family(available: Iterable[str] | None = None) -> str | None:
    """The first of CJK_FAMILIES among the fonts matplotlib knows (or `available`)."""
    known = (
        {f.name for f in font_manager.fontManager.ttflist} if available is None else set(available)
    )
    return next((family for family in CJK_FAMILIES if family in known), None)


class _Weightless(logging.Filter):
    """WenQuanYi Zen Hei has one weight, 500: matplotlib warns on every chart that it has no
    400. It is the weight there is, and it draws; the warning says nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("findfont: Failed to find font weight")


CJK = cjk_family()
if CJK:  # Latin in matplotlib's own font, the rest falls back to the CJK one glyph by glyph
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", CJK]
    logging.getLogger("matplotlib.font_manager").addFilter(_Weightless())


def label(name: str, code: str, cjk: str | None = CJK) -> str:
    """A name as a chart shows it: whole with a CJK font, else its Latin part."""
    return name if cjk else latin(name, code)


def _bars(volumes: list[Volume], title: str, top: int = 15) -> Figure:
    shown = volumes[:top][::-1]  # the largest on top
    fig = Figure(figsize=(7, 0.35 * len(shown) + 1.5), layout="constrained")
    ax = fig.subplots()
    names = [label(v.label, v.code) for v in shown]
    ax.barh(names, [v.cases for v in shown], color="#4878a8", label="cases")
    ax.barh(names, [v.closed for v in shown], color="#8cc084", label="closed")
    ax.set_title(title if len(volumes) <= top else f"{title}: the {top} most")
    ax.set_xlabel("cases")
    fig.legend(loc="outside lower center", ncol=2, frameon=False)  # below, not over the bars
    return fig


def classes_chart(report: Report, pack: CityPack) -> Figure:
    named = [v for v in report.top_classes if v.code != OTHERS]  # the rest would dwarf them
    return _bars(named, f"The {len(named)} most reported classes", top=len(named))


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


CHARTS: dict[str, Chart] = {
    "classes": classes_chart,
    "density": density_map,
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
