"""The study's ``reid_test.txt``: one line per query, ``001261.jpg: 016903.jpg, 005883.jpg``.

Gallery names follow the query name, best match first, separated by ", ". Written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from attrnet.io import atomic_open

_FORBIDDEN = (":", ",", "\n", "\r")


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{what} must be a non-empty name without surrounding spaces: {name!r}")
    if any(c in name for c in _FORBIDDEN):
        raise ValueError(f"{what} {name!r} contains one of ':', ',' or a line break")
    return name


def format_reid_line(query_name: str, gallery_names: Sequence[str]) -> str:
    """One line of ``reid_test.txt`` (without the newline)."""
    _check_name(query_name, "query name")
    names = [_check_name(g, f"gallery name for {query_name}") for g in gallery_names]
    return f"{query_name}: {', '.join(names)}" if names else f"{query_name}:"


def write_reid_results(
    path: str | os.PathLike,
    query_names: Sequence[str],
    ranked_gallery_names: Sequence[Sequence[str]],
) -> Path:
    """Write ``reid_test.txt`` atomically: per query, its gallery names best first."""
    if len(query_names) != len(ranked_gallery_names):
        raise ValueError(
            f"{len(query_names)} query names but {len(ranked_gallery_names)} ranked lists"
        )
    if len(set(query_names)) != len(query_names):
        raise ValueError("query names must be unique")
    lines = [format_reid_line(q, g) for q, g in zip(query_names, ranked_gallery_names, strict=True)]
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(line + "\n" for line in lines)
    return Path(path)


def read_reid_results(path: str | os.PathLike) -> dict[str, list[str]]:
    """Parse ``reid_test.txt`` into {query name: gallery names best first}, in file order.

    Raises ValueError naming the file and line for a malformed line or a repeated query.
    """
    results: dict[str, list[str]] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}, line {number}"
        query, sep, rest = line.partition(":")
        if not sep or not query or query != query.strip() or "," in query:
            raise ValueError(f"{where}: expected 'query.jpg: a.jpg, b.jpg', got {line!r}")
        if query in results:
            raise ValueError(f"{where}: query {query!r} appears twice")
        names: list[str] = []
        if rest:
            if not rest.startswith(" "):
                raise ValueError(f"{where}: expected ': ' after the query name, got {line!r}")
            names = rest[1:].split(", ")
            bad = [n for n in names if not n or n != n.strip() or any(c in n for c in ":,")]
            if bad:
                raise ValueError(f"{where}: malformed gallery name {bad[0]!r} in {line!r}")
        results[query] = names
    return results
