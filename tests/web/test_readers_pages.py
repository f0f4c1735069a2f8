"""The readers' pages over HTTP: the signup's sections and choice, the brand, the archive's list.

Browser checks (layout at 375 px, dark mode, axe-core) are in ``test_browser.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import lxml.html
import pytest

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition, get_edition, save_edition, set_status
from newsletter.content.models import Edition, EditionKind, EditionStatus
from newsletter.core.brand import Brand, SignupSection
from newsletter.core.config import Settings
from newsletter.web.pages import MAX_SECTIONS, long_date
from subscribers import store
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sample_editions import NOW, article
from tests.support.web import WebEnv, asgi_client, csrf_token, make_env

SECTIONS = [
    SignupSection(topic="uk", label="UK", description="What happened across the country today."),
    SignupSection(topic="politics", label="Politics", description="Westminster and beyond."),
    SignupSection(topic="crime", label="Crime", description="Courts, policing and justice."),
    SignupSection(topic="business", label="Business", description="Money, jobs and markets."),
    SignupSection(topic="health", label="Health", description="The NHS, care and your health."),
    SignupSection(topic="climate", label="Climate", description="Weather, energy, nature."),
]
PRIVACY = "https://news.example.com/privacy"
ROOT = "/newsletter"  # the path of NEWSLETTER_BASE_URL in the tests' settings
BRAND = Brand(name="The Morning Wire", colour="#7a1f3d", accent="#1d4f91")


@pytest.fixture
def configured(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    """The app with curated sections, a privacy notice, a schedule and a brand."""
    update = {
        "signup_sections": SECTIONS,
        "privacy_url": PRIVACY,
        "schedule_text": "every weekday at 7am",
        "brand": BRAND,
    }
    return make_env(settings.model_copy(update=update), smtp_server.url)


@pytest.fixture
async def configured_client(configured: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(configured.app) as http:
        yield http


def _doc(response: httpx.Response) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(response.text)


def _text(node: lxml.html.HtmlElement) -> str:
    return " ".join(node.text_content().split())


async def _post(client: httpx.AsyncClient, **fields: str | list[str]) -> httpx.Response:
    form = await client.get("/signup")
    data: dict[str, str | list[str]] = {"csrf_token": csrf_token(form.text), "consent": "yes"}
    data.update(fields)
    return await client.post("/signup", data=data)


def _topics(env: WebEnv, email: str) -> frozenset[str] | None:
    with env.engine.connect() as conn:
        person = store.find_by_email(conn, email)
    return None if person is None else person.topics


# --- signup -----------------------------------------------------------------------


async def test_signup_offers_the_configured_sections_with_their_descriptions(
    configured_client: httpx.AsyncClient,
) -> None:
    page = await configured_client.get("/")
    root = _doc(page)
    boxes = root.xpath("//input[@name='topic']")
    assert [b.get("value") for b in boxes] == [s.topic for s in SECTIONS]
    for section in SECTIONS:
        (box,) = root.xpath(f"//input[@name='topic'][@value='{section.topic}']")
        (label,) = root.xpath(f"//label[@for='{box.get('id')}']")
        assert _text(label) == section.label
        (about,) = root.xpath(f"//*[@id='{box.get('aria-describedby')}']")
        assert _text(about) == section.description
    # the choice of what to receive: everything (the default) or the ticked sections
    radios = root.xpath("//input[@type='radio'][@name='receive']")
    assert [(r.get("value"), r.get("checked") is not None) for r in radios] == [
        ("all", True),
        ("chosen", False),
    ]
    visible = _text(root)
    assert "every weekday at 7am" in visible
    assert "every morning" not in visible
    assert "The Morning Wire" in visible
    assert PRIVACY in root.xpath("//main//a/@href")
    assert PRIVACY in root.xpath("//footer//a/@href")
    # the button follows the sections, not a list of every tag of every article
    assert len(boxes) <= MAX_SECTIONS


async def test_everything_or_the_chosen_sections(
    configured: WebEnv, configured_client: httpx.AsyncClient
) -> None:
    # "everything" wins over ticks left behind: no topic filter
    everything = await _post(
        configured_client, email="all@example.com", receive="all", topic=["crime"]
    )
    assert everything.status_code == 200
    assert _topics(configured, "all@example.com") == frozenset()
    chosen = await _post(
        configured_client, email="some@example.com", receive="chosen", topic=["crime", "health"]
    )
    assert chosen.status_code == 200
    assert _topics(configured, "some@example.com") == frozenset({"crime", "health"})
    # "only the sections I choose" with none ticked is a question back, nothing stored
    none = await _post(configured_client, email="none@example.com", receive="chosen")
    assert none.status_code == 400
    assert "Choose at least one section, or choose everything." in none.text
    assert _doc(none).xpath("//input[@id='receive-chosen']/@checked")
    assert _topics(configured, "none@example.com") is None
    # the portal's own box posts topics without the choice; unknown slugs are refused
    portal = await _post(configured_client, email="portal@example.com", topic="economy")
    assert portal.status_code == 200
    assert _topics(configured, "portal@example.com") == frozenset({"economy"})
    unknown = await _post(
        configured_client, email="x@example.com", receive="chosen", topic="astrology"
    )
    assert unknown.status_code == 400
    odd = await _post(configured_client, email="y@example.com", receive="some")
    assert odd.status_code == 400


async def test_without_configured_sections_at_most_ten_article_sections_with_readable_labels(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    sections = [f"section-{n:02d}" for n in range(12)] + ["Health"]
    with env.engine.begin() as conn:
        upsert_articles(
            conn,
            # each section but the last two has two stories; every story has many tags
            [
                article(10 + n, name, ("nhs", "tag-a", "tag-b"))
                for n, name in enumerate(sections + sections[:-3])
            ],
            datetime.now(UTC),
        )
    root = _doc(await client.get("/"))
    labels = [_text(label) for label in root.xpath("//fieldset[@id='topics']//label")]
    assert len(labels) == MAX_SECTIONS
    assert "Section 00" in labels  # "section-00" written for people
    assert "Nhs" not in labels  # tags are not sections
    assert "Tag a" not in labels
    assert labels == sorted(labels, key=str.casefold)


# --- brand ------------------------------------------------------------------------


async def test_the_pages_carry_the_brand_colours_and_font(
    configured_client: httpx.AsyncClient,
) -> None:
    page = await configured_client.get("/")
    sheets = _doc(page).xpath("//link[@rel='stylesheet']/@href")
    assert sheets == [f"{ROOT}/static/brand.css", f"{ROOT}/static/site.css"]
    css = await configured_client.get("/static/brand.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "--brand: #7a1f3d;" in css.text
    assert "--brand-accent: #1d4f91;" in css.text
    assert f"--brand-font: {BRAND.font};" in css.text
    site = await configured_client.get("/static/site.css")
    assert "var(--brand" in site.text
    assert "#0b57d0" not in site.text  # the old bright blue
    assert "style-src 'self'" in page.headers["content-security-policy"]


# --- archive ----------------------------------------------------------------------


def _sent(env: WebEnv, **build: object) -> Edition:
    with env.engine.begin() as conn:
        edition = build_edition(conn, now=NOW, site_name="News", **build)  # type: ignore[arg-type]
        set_status(conn, edition.id, EditionStatus.SENDING, now=NOW)
        set_status(conn, edition.id, EditionStatus.SENT, now=NOW)
        return get_edition(conn, edition.id)


async def test_the_archive_lists_only_daily_editions_for_everyone(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    daily = _sent(env, title="Everyone's Briefing")
    topical = _sent(env, title="Crime Only Briefing", topics=["crime"])
    breaking = _sent(env, kind=EditionKind.BREAKING, article_ids=["story-1"])
    test = _sent(env, title="Test Briefing")
    with env.engine.begin() as conn:
        save_edition(conn, test.model_copy(update={"unlisted": True}))
    listing = await client.get("/archive")
    root = _doc(listing)
    titles = [_text(a) for a in root.xpath("//ul[@class='archive']/li/a")]
    assert titles == ["Everyone's Briefing"]
    # one date format on the readers' pages: the email's own ("Thursday 26 November 2026")
    (when,) = root.xpath("//ul[@class='archive']//time")
    assert _text(when) == "Thursday 26 November 2026" == long_date(NOW, "Europe/London")
    # unlisted is not unpublished: "View in browser" links still work
    for edition in (daily, topical, breaking, test):
        assert (await client.get(f"/archive/{edition.id}")).status_code == 200


async def test_archive_pages_have_site_navigation_and_a_signup_box(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    sent = _sent(env, title="Sent Briefing")
    name = env.settings.newsletter_name
    for path in ("/archive", f"/archive/{sent.id}"):
        root = _doc(await client.get(path))
        (nav,) = root.xpath("//header//nav")
        links = {_text(a): a.get("href") for a in nav.xpath(".//a")}
        assert links == {"Past editions": f"{ROOT}/archive", "Sign up": f"{ROOT}/"}
        brand = root.xpath("//header//a[normalize-space()=$name]/@href", name=name)
        assert brand == [f"{ROOT}/archive"]
        (box,) = root.xpath("//aside")
        assert _text(box).startswith(f"Get {name} in your inbox")
        assert "every morning" in _text(box)
    listing = _doc(await client.get("/archive"))
    (form,) = listing.xpath("//aside//form")
    assert (form.get("method"), form.get("action")) == ("get", f"{ROOT}/signup")
    # the signup page takes the address the box collected
    prefilled = _doc(await client.get("/signup", params={"email": "me@example.com"}))
    assert prefilled.xpath("//input[@id='email']/@value") == ["me@example.com"]


def test_edition_edit_unlists_and_lists_a_sent_edition(
    env: WebEnv, run_cli: Callable[..., CLIResult]
) -> None:
    sent = _sent(env, title="Sent Briefing")
    result = run_cli("edition", "edit", sent.id, "--unlist")
    assert result.code == 0, result.stderr
    assert f"{sent.id}: unlisted" in result.stdout
    with env.engine.connect() as conn:
        after = get_edition(conn, sent.id)
    assert after.unlisted
    assert after.status is EditionStatus.SENT
    assert after.model_copy(update={"unlisted": False}) == sent
