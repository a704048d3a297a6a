"""What the Hydra entry points share: where their configs live, and the printed metric table."""

from __future__ import annotations

from typing import Any

#: Hydra finds the configs in the installed package (``attrnet.conf``, i.e. the repo's ``conf/``).
CONFIG_PATH = "pkg://attrnet.conf"


def format_table(rows: dict[str, Any], digits: int = 4) -> str:
    """A two-column text table of metric name and value."""
    width = max(len(k) for k in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 8}"]
    for key, value in rows.items():
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
