"""Plain-text tables for terminals and logs. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_cell(x: object, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align_right: Sequence[bool] | None = None
) -> str:
    cells = [[format_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    right = list(align_right) if align_right is not None else [False] * len(header)

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)
