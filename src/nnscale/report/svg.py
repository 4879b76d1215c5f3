"""Matplotlib figures as SVG text that can be inlined many times in one HTML page.

No pyplot: figures are `matplotlib.figure.Figure` objects rendered by the SVG backend directly, so
nothing depends on a global backend or a display, and two reports built in one process share no
state. Choices, and why:
- `svg.fonttype: none` writes text as <text> elements instead of glyph outlines: files are several
  times smaller, the labels stay selectable and searchable in the browser, and a test can read
  them. The cost is that the browser picks the font (DejaVu Sans, then any sans-serif).
- `svg.hashsalt` and no date make the output deterministic: the same records give the same bytes.
- Every id in a figure gets the figure's own prefix. Matplotlib numbers clip paths and markers per
  file; inlined side by side, two figures would otherwise define the same ids and one figure would
  draw with the other's clip paths.
Text is escaped by matplotlib's XML writer; `label` also neutralises matplotlib's own markup
(mathtext between `$`, legend entries hidden by a leading `_`), so a user's string is drawn as is.
"""

from __future__ import annotations

import io
import math
import re

from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color universal design": distinguishable with every common colour-vision
# deficiency. Precisions keep their colour in every figure of a report.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
PRECISION_COLOR = {"fp32": PALETTE[0], "tf32": PALETTE[1], "bf16": PALETTE[2], "fp16": PALETTE[3]}
GRID = "#d9dde3"
INK = "#1f2933"
MUTED = "#616e7c"

RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "nnscale",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # the SVG names it, then the browser's sans-serif
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.5,
    "axes.edgecolor": "#9aa5b1",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.7,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.8,
    "lines.markersize": 4.5,
}


def label(text: object) -> str:
    """A user's string as matplotlib draws it literally: `$` would start mathtext, and a legend
    entry beginning with `_` would be hidden."""
    s = str(text).replace("$", r"\$")  # outside mathtext a backslash is literal, but for \$
    return "\u200b" + s if s.startswith("_") else s


def color_for(key: str, index: int) -> str:
    return PRECISION_COLOR.get(key, PALETTE[index % len(PALETTE)])


def new_figure(n_axes: int, ncols: int = 3, width: float = 4.2, height: float = 3.3):
    """A figure with `n_axes` axes in a grid of at most `ncols` columns; returns (fig, axes)."""
    ncols = max(1, min(ncols, n_axes))
    nrows = math.ceil(n_axes / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n_axes:]:
        ax.set_visible(False)
    return fig, axes[:n_axes]


_TAG = re.compile(r"<[^<>]*>")
_ID = re.compile(r'(\s)id="')


def _prefix_ids(svg: str, prefix: str) -> str:
    # Only tags are rewritten: text content cannot hold `<` or `>` (matplotlib escapes them), so a
    # user's string that happens to read `id="x"` is drawn as it is.
    def tag(m: re.Match) -> str:
        t = _ID.sub(rf'\1id="{prefix}-', m.group(0))
        return t.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')

    return _TAG.sub(tag, svg)


def to_svg(fig: Figure, fig_id: str) -> str:
    """The figure as an <svg> element ready to inline (no XML prolog, no metadata)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = _prefix_ids(text, fig_id)
    return text.replace("<svg ", f'<svg class="plot" role="img" data-figure="{fig_id}" ', 1)


def plain_log(ax, axis: str = "y") -> None:
    """A log axis labelled 0.1, 0.2, 0.5, 1, 2, 5, ... instead of powers of ten in mathtext."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    target.set_minor_formatter(NullFormatter())


def fig_legend(fig, axes, extra=()) -> None:
    """One legend under all panels: colours mean the same in every panel, so one key serves all,
    and no legend covers a curve."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, text in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(text, h)
    for h in extra:
        seen.setdefault(h.get_label(), h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=min(len(seen), 5))


def log2_batches(ax, values) -> None:
    """A log2 x axis whose ticks are the batch sizes (or worker counts) actually measured."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ticks = sorted({v for v in values if v and v > 0})
    ax.set_xscale("log", base=2)
    if len(ticks) > 10:  # keep every second tick so labels do not collide
        ticks = ticks[::2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    fmt = ScalarFormatter()
    fmt.set_scientific(False)
    ax.xaxis.set_major_formatter(fmt)
