"""The documentation site builds with ``mkdocs build --strict``: every page in the nav exists,
every link and anchor between pages resolves, and every API page renders from the docstrings
without a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.helpers import needs


@needs("mkdocs", "material", "mkdocstrings_handlers.python")
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (site / "index.html").is_file()
    api = (site / "api" / "load" / "index.html").read_text()
    assert 'id="attrnet.inference.api.load"' in api  # rendered from the docstrings
