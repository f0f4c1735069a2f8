"""Headless Chromium opens the preview: no horizontal scrolling at 375 px, readable in dark mode."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.content.models import Edition
from newsletter.content.preview import build_preview, sample_recipient, write_preview
from newsletter.core.config import Settings
from tests.support.html_checks import contrast
from tests.support.sample_editions import breaking_edition, daily_edition, hostile_edition

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is missing"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _preview_file(settings: Settings, edition: Edition, folder: Path) -> Path:
    document = build_preview(settings, edition, sample_recipient(settings))
    return write_preview(document, folder).html


def _open(browser: Any, path: Path, width: int, scheme: str = "light") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    # offline: the pictures are on https hosts that do not exist here
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    page.goto(path.as_uri())
    return page


@pytest.mark.parametrize(
    "make", [daily_edition, hostile_edition, breaking_edition], ids=["daily", "hostile", "breaking"]
)
def test_no_horizontal_scrolling_at_375px(
    browser: Any, settings: Settings, tmp_path: Path, make: Any
) -> None:
    path = _preview_file(settings, make(), tmp_path)
    page = _open(browser, path, 375)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.evaluate("document.body.scrollWidth") <= 375
        # the container took the narrow width instead of its desktop 600 px
        width = page.evaluate("document.querySelector('table.card').getBoundingClientRect().width")
        assert width <= 375
    finally:
        page.close()


def test_desktop_container_is_600px(browser: Any, settings: Settings, tmp_path: Path) -> None:
    page = _open(browser, _preview_file(settings, daily_edition(), tmp_path), 1024)
    try:
        width = page.evaluate("document.querySelector('table.card').getBoundingClientRect().width")
        assert width == 600
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('td.px p')).fontSize)"
        )
        assert size >= 15
    finally:
        page.close()


_COLOURS = """
() => {
  const rgb = s => s.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const bg = el => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (!c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return rgb(c);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('h1, h2, h3, p, li, a, td.masthead')) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const fg = rgb(getComputedStyle(el).color);
    out.push({text: el.textContent.trim().slice(0, 30), fg: fg, bg: bg(el)});
  }
  return out;
}
"""


def _hex(rgb: list[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_stays_readable_in_light_and_dark_mode(
    browser: Any, settings: Settings, tmp_path: Path, scheme: str
) -> None:
    page = _open(browser, _preview_file(settings, daily_edition(), tmp_path), 600, scheme)
    try:
        pairs = page.evaluate(_COLOURS)
        card = page.evaluate(
            "getComputedStyle(document.querySelector('table.card')).backgroundColor"
        )
    finally:
        page.close()
    assert len(pairs) > 20
    for pair in pairs:
        ratio = contrast(_hex(pair["fg"]), _hex(pair["bg"]))
        assert ratio >= 4.5, f"{scheme}: {pair['text']!r} has contrast {ratio:.2f}"
    assert (card == "rgb(255, 255, 255)") == (scheme == "light")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600])
def test_screenshots_light_and_dark(
    browser: Any, settings: Settings, tmp_path: Path, scheme: str, width: int
) -> None:
    """Screenshots of the digest (kept in $DIGEST_SCREENSHOTS when set, to look at)."""
    keep = os.environ.get("DIGEST_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page = _open(browser, _preview_file(settings, daily_edition(), tmp_path), width, scheme)
    try:
        shot = folder / f"digest-{width}-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        masthead = page.evaluate(
            "getComputedStyle(document.querySelector('td.masthead')).backgroundColor"
        )
        card = page.evaluate(
            "getComputedStyle(document.querySelector('table.card')).backgroundColor"
        )
        headline = page.evaluate("getComputedStyle(document.querySelector('h1 a')).color")
        others = page.evaluate("getComputedStyle(document.querySelector('h3 a')).color")
    finally:
        page.close()
    assert shot.stat().st_size > 10_000
    assert masthead != "rgba(0, 0, 0, 0)"
    # the lead headline keeps the same colour as the others in both schemes (never link blue)
    assert headline == others
    assert (card == "rgb(255, 255, 255)") == (scheme == "light")
