"""Small HTML builders shared by the report sections.

Everything that ends up in the page goes through :func:`esc` (``html.escape``); figures are
rendered with matplotlib's Agg canvas (no pyplot state, no display) and embedded as base64
``data:`` URIs so that the report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# one palette for every plot in the report (colour-blind safe, Okabe–Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def esc(value: Any) -> str:
    """HTML-escape ``str(value)`` (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt_value(value: Any, *, digits: int = 4) -> str:
    """Format one cell: integers as is, floats with ``digits`` significant digits, tiny P in e-notation."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        number = float(value)
        if math.isnan(number):
            return "NA"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if number == int(number) and abs(number) < 1e12 and not isinstance(value, (float, np.floating)):
            return str(int(number))
        if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e7):
            return f"{number:.{max(digits - 1, 1)}e}"
        return f"{number:.{digits}g}"
    return str(value)


def new_figure(width: float = 6.4, height: float = 4.0) -> tuple[Figure, Any]:
    """A matplotlib figure on the Agg canvas with one axes."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def figure_png(figure: Figure, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_img(
    png: bytes, *, alt: str, caption: str | None = None, element_id: str | None = None, wide: bool = False
) -> str:
    """``<figure>`` with the PNG embedded as a base64 data URI."""
    encoded = base64.b64encode(png).decode("ascii")
    attributes = f' id="{esc(element_id)}"' if element_id else ""
    classes = ' class="wide"' if wide else ""
    caption_html = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure{classes}><img{attributes} class="plot" alt="{esc(alt)}" '
        f'src="data:image/png;base64,{encoded}">{caption_html}</figure>'
    )


def figure_img(
    figure: Figure, *, alt: str, caption: str | None = None, element_id: str | None = None, wide: bool = False
) -> str:
    """Render a matplotlib figure into an embedded ``<figure>``."""
    return png_img(figure_png(figure), alt=alt, caption=caption, element_id=element_id, wide=wide)


def table_html(
    table: pd.DataFrame,
    *,
    caption: str | None = None,
    element_id: str | None = None,
    max_rows: int = 200,
    digits: int = 4,
    index: bool = False,
) -> str:
    """An escaped HTML table; numbers right-aligned; at most ``max_rows`` rows (a note says how many)."""
    if index:
        table = table.reset_index()
    shown = table.head(max_rows)
    attributes = f' id="{esc(element_id)}"' if element_id else ""
    parts = [f'<div class="table-wrap"><table class="data"{attributes}>']
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append(
        "<thead><tr>" + "".join(f"<th>{esc(column)}</th>" for column in shown.columns) + "</tr></thead>"
    )
    parts.append("<tbody>")
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for value in row:
            numeric = isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_))
            css = ' class="num"' if numeric else ""
            cells.append(f"<td{css}>{esc(fmt_value(value, digits=digits))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    if len(table) > max_rows:
        parts.append(f'<p class="note">showing {max_rows} of {len(table)} rows</p>')
    return "".join(parts)


def mapping_table(
    mapping: Mapping[str, Any],
    *,
    caption: str | None = None,
    element_id: str | None = None,
    key_header: str = "field",
    value_header: str = "value",
) -> str:
    """Two-column table of scalar key/value pairs."""
    frame = pd.DataFrame({key_header: list(mapping.keys()), value_header: list(mapping.values())})
    frame[value_header] = frame[value_header].astype(object)
    return table_html(frame, caption=caption, element_id=element_id)


def json_html(record: Any, *, caption: str | None = None, depth: int = 0) -> str:
    """Render a JSON record generically: scalars as a key/value table, nested dicts as sub-tables.

    Lists of records become tables; lists of scalars are joined by commas.
    """
    if not isinstance(record, Mapping):
        return f"<pre>{esc(record)}</pre>"
    scalars: dict[str, Any] = {}
    nested: list[str] = []
    for key, value in record.items():
        if isinstance(value, Mapping):
            if depth >= 3:
                scalars[key] = str(dict(value))
            else:
                nested.append(f"<h4>{esc(key)}</h4>" + json_html(value, depth=depth + 1))
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            nested.append(f"<h4>{esc(key)}</h4>" + table_html(pd.DataFrame(list(value))))
        elif isinstance(value, list):
            scalars[key] = ", ".join(fmt_value(item) for item in value)
        else:
            scalars[key] = value
    out = mapping_table(scalars, caption=caption) if scalars else ""
    return out + "".join(nested)


def cards(items: Iterable[tuple[str, Any]]) -> str:
    """A row of headline numbers (label, value)."""
    body = "".join(
        f'<div class="card"><div class="value">{esc(fmt_value(value))}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for label, value in items
    )
    return f'<div class="cards">{body}</div>'


def callout(message: str) -> str:
    """A highlighted note (e.g. a file that could not be parsed)."""
    return f'<div class="callout">{esc(message)}</div>'


def source_note(paths: Iterable[str]) -> str:
    """'from: a, b' line naming the files a block was built from."""
    names = ", ".join(f"<code>{esc(path)}</code>" for path in paths)
    return f'<p class="source">from {names}</p>'
