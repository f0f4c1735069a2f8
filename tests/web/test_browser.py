"""Headless Chromium opens the email, the readers' pages and the preview page: no horizontal
scrolling at 375 px, readable in light and dark mode, screenshots of both, axe-core clean."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from newsletter.content.editions import build_edition, set_status
from newsletter.content.models import Edition, EditionStatus
from newsletter.content.preview import build_preview, sample_recipient, write_preview
from newsletter.core.config import Settings
from newsletter.web.preview import create_preview_app
from tests.support.chromium import chromium
from tests.support.html_checks import contrast
from tests.support.sample_editions import NOW, breaking_edition, daily_edition, hostile_edition
from tests.support.web import WebEnv, running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


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


# --- the readers' pages and the preview page, served for real -------------------------

WCAG_AA = "{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}"


@pytest.fixture
def site(env: WebEnv) -> Iterator[str]:
    """The readers' app on a real uvicorn with one sent edition; its public base URL."""
    with env.engine.begin() as conn:
        sent = build_edition(conn, now=NOW, title="Sent Briefing", site_name="News")
        set_status(conn, sent.id, EditionStatus.SENDING, now=NOW)
        set_status(conn, sent.id, EditionStatus.SENT, now=NOW)
    with running_server(env.app) as base:
        yield base + urlsplit(env.settings.base_url).path


def _visit(browser: Any, url: str, width: int, scheme: str = "light", **options: Any) -> Any:
    page = browser.new_page(
        viewport={"width": width, "height": 800}, color_scheme=scheme, **options
    )
    page.route(re.compile(r"^https://"), lambda route: route.abort())  # pictures: offline
    page.goto(url)
    return page


def _shot(page: Any, name: str, tmp_path: Path) -> Path:
    keep = os.environ.get("DIGEST_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000
    return shot


_BOX = "el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.bottom]; }"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600])
def test_signup_page_fits_the_phone_and_offers_sections_in_a_grid(
    browser: Any, site: str, tmp_path: Path, width: int, scheme: str
) -> None:
    page = _visit(browser, site + "/", width, scheme)
    try:
        _shot(page, f"signup-{width}-{scheme}.png", tmp_path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # "everything" is the default: no wall of checkboxes before the button
        assert not page.get_by_label("Crime", exact=True).is_visible()
        _, _, bottom = page.get_by_role("button", name="Sign up").evaluate(_BOX)
        assert bottom < 1300, f"the button ends {bottom} px down"
        page.get_by_label("Only the sections I choose").check()
        boxes = page.locator("input[name=topic]")
        assert boxes.count() == 3
        lefts = {round(boxes.nth(i).evaluate(_BOX)[0]) for i in range(boxes.count())}
        assert len(lefts) == (1 if width < 576 else 2)  # one column on a phone, two wider
        _shot(page, f"signup-sections-{width}-{scheme}.png", tmp_path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        pairs = page.evaluate(_COLOURS)
    finally:
        page.close()
    for pair in pairs:
        ratio = contrast(_hex(pair["fg"]), _hex(pair["bg"]))
        assert ratio >= 4.5, f"{scheme}: {pair['text']!r} has contrast {ratio:.2f}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600])
def test_archive_pages_fit_the_phone_in_light_and_dark(
    browser: Any, site: str, tmp_path: Path, width: int, scheme: str
) -> None:
    page = _visit(browser, site + "/archive", width, scheme)
    try:
        _shot(page, f"archive-{width}-{scheme}.png", tmp_path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.get_by_role("link", name="Sent Briefing").click()
        page.wait_for_selector("aside h2")
        _shot(page, f"archive-edition-{width}-{scheme}.png", tmp_path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        header = page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
        nav = page.evaluate("getComputedStyle(document.querySelector('header nav a')).color")
        page.get_by_role("link", name="Sign up free").click()
        page.wait_for_selector("input[name=email]")
    finally:
        page.close()
    assert contrast(_hex(_rgb(nav)), _hex(_rgb(header))) >= 4.5


def _rgb(css: str) -> list[float]:
    return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", css)[:3]]


def _axe() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("axe_playwright_python")
    if spec is None or spec.origin is None:
        return None
    found = Path(spec.origin).parent / "axe.min.js"
    return found if found.exists() else None


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_core_finds_no_violation_on_the_readers_pages(
    browser: Any, site: str, scheme: str
) -> None:
    axe = _axe()
    if axe is None:
        pytest.skip("axe-playwright-python (axe-core) is not installed")
    found: dict[str, list[tuple[str, str, int, list[Any]]]] = {}
    # bypass_csp: axe is a script, which the pages' CSP rightly refuses
    page = _visit(browser, site + "/", 375, scheme, bypass_csp=True)
    try:
        for name, url in (("signup", "/"), ("archive", "/archive"), ("edition", None)):
            if url is not None:
                page.goto(site + url)
            else:
                page.goto(site + "/archive")
                page.get_by_role("link", name="Sent Briefing").click()
                page.wait_for_selector("aside h2")
            if name == "signup":
                page.get_by_label("Only the sections I choose").check()
            page.add_script_tag(path=str(axe))
            result = page.evaluate(
                f"axe.run(document, {{resultTypes: ['violations'], runOnly: {WCAG_AA}}})"
            )
            found[name] = [
                (v["id"], v["impact"], len(v["nodes"]), [n["target"] for n in v["nodes"]])
                for v in result["violations"]
            ]
    finally:
        page.close()
    assert found == {"signup": [], "archive": [], "edition": []}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_preview_page_fits_375px_and_shows_the_email_in_dark_mode(
    browser: Any, settings: Settings, tmp_path: Path, scheme: str
) -> None:
    edition = daily_edition()
    app = create_preview_app(settings, lambda: edition, sample_recipient(settings))
    with running_server(app) as base:
        page = _visit(browser, base + "/", 375, scheme)
        try:
            page.wait_for_load_state("load")
            _shot(page, f"preview-375-{scheme}.png", tmp_path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            frames = {f.url.rsplit("/", 1)[-1]: f for f in page.frames if f != page.main_frame}
            assert sorted(frames) == ["dark", "html"]
            cards = {
                view: frame.evaluate(
                    "getComputedStyle(document.querySelector('table.card')).backgroundColor"
                )
                for view, frame in frames.items()
            }
        finally:
            page.close()
    # the dark frame shows the email's dark rules whatever the viewer's own setting
    assert cards["html"] == ("rgb(255, 255, 255)" if scheme == "light" else cards["dark"])
    assert cards["dark"] != "rgb(255, 255, 255)"
