"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing page or
a docstring the API pages cannot render fails), offline, and its components page is generated
from the plugins themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

from iqa_core import registry  # noqa: E402
from iqa_core.commands import describe_component  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


def test_every_page_in_the_nav_is_built(site: Path) -> None:
    pages = [p.stem for p in (ROOT / "docs").glob("*.md")]
    assert {"index", "getting-started", "recipes", "components", "weights", "evaluation", "scaling", "plugins",
            "trust", "performance", "verified"} <= set(pages)  # fmt: skip
    for page in pages:
        assert (site / f"{page}.html").is_file() or (site / page / "index.html").is_file(), page


def test_components_page_is_what_iqa_plugins_prints(site: Path) -> None:
    import html

    text = html.unescape((site / "components.html").read_text())
    names = [(kind, name) for kind in registry.KINDS for name in registry.available(kind)]
    assert len(names) >= 10
    for kind, name in names:
        for line in describe_component(kind, name, installed=False):
            assert line.strip() in text, (name, line)


def test_the_site_asks_no_font_server(site: Path) -> None:
    for page in site.rglob("*.html"):
        assert "fonts.googleapis.com" not in page.read_text(), page
