"""Messages: built once per variant, personalised by substitution, parsed back exactly."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from typing import Any

import lxml.html
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import newsletter.content.render as render_module
from newsletter.content.message import MessageTemplate, Personal, new_message_id
from newsletter.content.models import Edition
from newsletter.content.render import RenderedVariant, Renderer
from newsletter.core.config import Settings
from newsletter.core.errors import HeaderInjectionError, SubscriberInputError
from tests.support.sample_editions import daily_edition

DATE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from newsletter.core.config import load_settings

    return load_settings(
        tmp_path_factory.mktemp("cfg"),
        secret_key="test-secret-key-not-for-production",
        base_url="https://news.example.com/newsletter",
        reply_to="Letters <letters@news.example.com>",
    )


@pytest.fixture(scope="module")
def edition() -> Edition:
    return daily_edition()


@pytest.fixture(scope="module")
def variant(module_settings: Settings, edition: Edition) -> RenderedVariant:
    return Renderer(module_settings).render(edition)


@pytest.fixture(scope="module")
def template(
    variant: RenderedVariant, module_settings: Settings, edition: Edition
) -> MessageTemplate:
    return MessageTemplate.from_variant(variant, module_settings, edition)


def personal(n: int = 1, **fields: Any) -> Personal:
    data: dict[str, object] = {
        "email": f"reader{n}@example.org",
        "name": f"Reader {n}",
        "unsubscribe_url": f"https://news.example.com/newsletter/unsubscribe/tok{n}?a=1&b=2",
        "preferences_url": f"https://news.example.com/newsletter/preferences/tok{n}",
        "message_id": f"<edition.{n}@news.example.com>",
        "unsubscribe_mailto": f"mailto:unsubscribe@news.example.com?subject=unsubscribe%20tok{n}",
        "date": DATE,
    }
    data.update(fields)
    return Personal(**data)  # type: ignore[arg-type]


def parsed(raw: bytes) -> EmailMessage:
    if raw.isascii():
        message = BytesParser(policy=policy.default).parsebytes(raw)
    else:
        # RFC 6532 (UTF-8 headers): BytesParser would surrogate-escape them
        message = Parser(policy=policy.SMTPUTF8).parsestr(raw.decode("utf-8"))
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def display_name(raw: bytes) -> str:
    """The To display name as an RFC 2047 decoder reads it.

    policy.default's address parser keeps the folding space between two adjacent
    encoded words (RFC 2047 section 6.2 says to drop it), so a long non-ASCII
    name, which needs several words, is decoded here with decode_header.
    """
    head = raw.partition(b"\r\n\r\n")[0].decode("utf-8").replace("\r\n ", " ")
    value = next(line for line in head.split("\r\n") if line.startswith("To: "))[4:]
    phrase = value.rpartition(" <")[0]
    if phrase.count("=?") > 1:
        return str(make_header(decode_header(phrase)))
    return str(parsed(raw)["To"].addresses[0].display_name)


def bodies(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    return (
        plain.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def expected(variant: RenderedVariant, who: Personal) -> tuple[str, str]:
    values = {
        "name": who.name,
        "unsubscribe_url": who.unsubscribe_url,
        "preferences_url": who.preferences_url,
    }
    return variant.fill_text(values), variant.fill_html(values)


def test_structure_and_headers(template: MessageTemplate, module_settings: Settings) -> None:
    who = personal()
    message = parsed(template.personalise(who))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert message["From"] == module_settings.sender
    assert message["To"].addresses[0].addr_spec == who.email
    assert message["To"].addresses[0].display_name == who.name
    assert message["Reply-To"] == "Letters <letters@news.example.com>"
    assert message["Subject"] == daily_edition().subject
    assert message["Date"].datetime == DATE
    assert message["Message-ID"] == who.message_id
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == f"{module_settings.site_name} <digest.news.example.com>"
    # a short link is folded onto its own line (within 78): the parsed value may keep
    # the folding space in front
    unsubscribe = f"<{who.unsubscribe_url}>, <{who.unsubscribe_mailto}>"
    assert str(message["List-Unsubscribe"]).strip() == unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_replies_go_to_the_from_address_unless_configured(settings: Settings) -> None:
    variant = Renderer(settings).render(daily_edition())
    raw = MessageTemplate.from_variant(variant, settings).personalise(personal())
    assert parsed(raw)["Reply-To"] == settings.sender


@pytest.mark.parametrize(
    ("name", "first_name", "greeting"),
    [
        ("James Okafor", None, "Hello James,"),
        ("Okafor, James", None, "Hello James,"),
        ("Dr Ada King", None, "Hello Ada,"),
        ("Dr King", None, "Hello Dr King,"),
        ("Ada", "Augusta", "Hello Augusta,"),
        ("李小龍", None, "Hello 李小龍,"),
        ("", None, "Hello,"),
        ("  ", "", "Hello,"),
        ("Ada King", "  ", "Hello Ada,"),  # a blank first name is no first name
        ("Ada King", "Jo\r\nBcc: x@y.example", "Hello Jo Bcc: x@y.example,"),
        ("Ada King", "Jo\u202eann\u0007", "Hello Joann,"),  # bidi override, control
        ("Ada King", "x" * 41, "Hello Ada,"),  # too long for a first name
        ("Y" * 41, None, "Hello,"),
    ],
)
def test_greeting_uses_the_first_name(
    template: MessageTemplate, name: str, first_name: str | None, greeting: str
) -> None:
    text, html = bodies(parsed(template.personalise(personal(name=name, first_name=first_name))))
    assert greeting in text.splitlines()
    assert f">{greeting}</p>" in html
    assert "Hello there" not in text


def test_greetings_can_be_turned_off(settings: Settings) -> None:
    quiet = settings.model_copy(update={"greetings": False})
    variant = Renderer(quiet).render(daily_edition())
    raw = MessageTemplate.from_variant(variant, quiet).personalise(personal())
    text, html = bodies(parsed(raw))
    assert "Hello" not in text
    assert "Hello" not in html


def test_subject_folds_at_78_and_unfolds_exactly(settings: Settings) -> None:
    subject = (
        "The council votes tonight on the future of the high street, the bus lanes and the library"
    )
    variant = Renderer(settings).render(daily_edition(subject=subject, id="long-subject"))
    raw = MessageTemplate.from_variant(variant, settings).personalise(personal())
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith("Subject: "))
    assert head[start + 1].startswith(" ")
    assert all(len(line) <= 78 for line in head[start : start + 2])
    assert parsed(raw)["Subject"] == subject


def test_list_unsubscribe_folds_when_that_brings_it_within_78(template: MessageTemplate) -> None:
    short = "https://news.example.com/unsubscribe/u.1.6b0ee150.1TV8f0pBXd1ykSmvJbckoA"
    raw = template.personalise(personal(unsubscribe_url=short))
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")
    start = head.index("List-Unsubscribe:")
    assert head[start + 1] == f" <{short}>,"
    assert len(head[start + 2]) <= 78
    value = str(parsed(raw)["List-Unsubscribe"]).strip()
    assert value == f"<{short}>, <mailto:unsubscribe@news.example.com?subject=unsubscribe%20tok1>"


def test_crlf_and_line_lengths(template: MessageTemplate) -> None:
    long_url = "https://news.example.com/newsletter/unsubscribe/" + "t" * 400
    raw = template.personalise(personal(unsubscribe_url=long_url, name="N" * 150))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "QP lines stay within 76"
    text, html = bodies(parsed(raw))
    assert long_url in text
    assert f'href="{long_url}"' in html


def test_no_body_line_starts_with_a_dot(module_settings: Settings) -> None:
    # lines of dots in the text, and links with a dot at every offset QP may wrap at:
    # the sender passes the bytes to DATA without dot-stuffing them
    intro = "\n\n".join(["." * k + " and so on" for k in range(1, 6)] + [". x " * 40])
    variant = Renderer(module_settings).render(daily_edition(intro=intro, id="dots"))
    template = MessageTemplate.from_variant(variant, module_settings)
    for n in range(40, 130):
        link = "https://news.example.com/u/" + "a" * n + ".b" * 30 + "..c"
        who = personal(unsubscribe_url=link, preferences_url=link.replace("/u/", "/p/."))
        raw = template.personalise(who)
        assert b"\r\n." not in raw, n
        body = raw.partition(b"\r\n\r\n")[2]
        assert all(len(line) <= 76 for line in body.split(b"\r\n")), n
        assert bodies(parsed(raw)) == expected(variant, who), n
    text, _ = bodies(parsed(raw))
    assert "... and so on" in text.splitlines()


def test_round_trip_bodies_exactly(template: MessageTemplate, variant: RenderedVariant) -> None:
    who = personal(7)
    text, html = bodies(parsed(template.personalise(who)))
    assert (text, html) == expected(variant, who)
    assert "Hello Reader," in text  # the first word of "Reader 7"


@pytest.mark.parametrize(
    ("name", "email", "address"),
    [
        ("Zoë Ångström-Łukasiewicz", "zoe@example.org", "zoe@example.org"),
        ('Smith, "Jo" (editor)', "jo@example.org", "jo@example.org"),
        ("José", "jose@bücher.example", "jose@xn--bcher-kva.example"),
        ("Ωμέγα " * 40, "omega@example.org", "omega@example.org"),
        ("", "nobody@example.org", "nobody@example.org"),
        ("李小龍", "lee@例え.jp", "lee@xn--r8jz45g.jp"),
        ("Zoë", "zoë@bücher.example", "zoë@bücher.example"),
    ],
)
def test_recipient_header_round_trip(
    template: MessageTemplate, variant: RenderedVariant, name: str, email: str, address: str
) -> None:
    who = personal(name=name, email=email)
    raw = template.personalise(who)
    # only a UTF-8 local part (sent with SMTPUTF8) puts 8-bit bytes in the header
    assert raw.isascii() == email.partition("@")[0].isascii()
    message = parsed(raw)
    [to] = message["To"].addresses
    assert to.addr_spec == address
    assert display_name(raw) == name.strip()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert bodies(message) == expected(variant, who)


def test_name_is_html_escaped_in_the_html_part_only(template: MessageTemplate) -> None:
    who = personal(name='Tom&<b>"Jerry"</b> Cat')
    message = parsed(template.personalise(who))
    text, html = bodies(message)
    assert 'Hello Tom&<b>"Jerry"</b>,' in text
    assert "Hello Tom&amp;&lt;b&gt;&quot;Jerry&quot;&lt;/b&gt;," in html
    root = lxml.html.document_fromstring(html)
    assert not root.xpath("//b")
    assert 'Hello Tom&<b>"Jerry"</b>,' in root.text_content()
    # a URL's "&" is escaped in the attribute and reads back exactly
    hrefs = [a.get("href") for a in root.xpath("//a") if a.text_content() == "Unsubscribe"]
    assert hrefs == [who.unsubscribe_url]
    assert message["To"].addresses[0].display_name == 'Tom&<b>"Jerry"</b> Cat'


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Eve\r\nBcc: victim@example.org"},
        {"name": "Eve\nX"},
        {"email": "eve@example.org\r\nBcc: victim@example.org"},
        {"unsubscribe_url": "https://x.example/u\r\nBcc: v@example.org"},
        {"unsubscribe_mailto": "mailto:u@x.example\nBcc: v@example.org"},
        {"message_id": "<a@b>\r\nBcc: v@example.org"},
    ],
)
def test_header_injection_is_refused(template: MessageTemplate, fields: dict[str, str]) -> None:
    with pytest.raises(HeaderInjectionError):
        template.personalise(personal(1, **fields))


def test_subject_with_a_line_break_is_refused(settings: Settings) -> None:
    edition = daily_edition(subject="Hello\r\nBcc: victim@example.org")
    variant = Renderer(settings).render(edition)
    with pytest.raises(HeaderInjectionError, match="subject"):
        MessageTemplate.from_variant(variant, settings, edition)


@pytest.mark.parametrize("email", ["no-at-sign", "a@b@c", "<a@b.c>", "a b@example.org", "@x.org"])
def test_unusable_addresses_are_refused(template: MessageTemplate, email: str) -> None:
    with pytest.raises(SubscriberInputError):
        template.personalise(personal(email=email))


def test_non_ascii_subject_is_encoded_and_round_trips(settings: Settings) -> None:
    subject = "Zoë's café reopens — and 7 more stories, naïvely " + "€" * 40
    edition = daily_edition(subject=subject)
    variant = Renderer(settings).render(edition)
    raw = MessageTemplate.from_variant(variant, settings, edition).personalise(personal())
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"=?utf-8?" in line)
    assert parsed(raw)["Subject"] == subject


def test_same_input_same_bytes(settings: Settings) -> None:
    first = MessageTemplate.from_variant(Renderer(settings).render(daily_edition()), settings)
    second = MessageTemplate.from_variant(Renderer(settings).render(daily_edition()), settings)
    assert first.personalise(personal()) == second.personalise(personal())
    other = first.personalise(personal(message_id="<other@news.example.com>"))
    differing = [
        line
        for line in set(other.split(b"\r\n")) ^ set(first.personalise(personal()).split(b"\r\n"))
    ]
    assert differing
    assert all(line.startswith(b"Message-ID:") for line in differing)


def test_default_date_and_fresh_message_ids(template: MessageTemplate) -> None:
    ids = {new_message_id("news.example.com") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"<[^<>@\s]+@news\.example\.com>", i) for i in ids)
    message = parsed(template.personalise(personal(date=None, message_id=ids.pop())))
    assert abs((message["Date"].datetime - datetime.now(UTC)).total_seconds()) < 300


def test_personalising_neither_renders_nor_inlines(
    template: MessageTemplate, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> str:
        raise AssertionError("premailer or Jinja2 on the per-recipient path")

    monkeypatch.setattr(render_module, "inline_css", forbidden)
    monkeypatch.setattr(render_module.Renderer, "render", forbidden)
    for n in range(50):
        assert template.personalise(personal(n))


def test_a_slot_token_inside_an_article_is_never_filled(settings: Settings) -> None:
    from tests.support.sample_editions import article

    sneaky = article(1, headline="Before NLPH7unsubscribe_url7 after NLPH7bogus7")
    edition = daily_edition([sneaky, article(2)], id="sneaky")
    variant = Renderer(settings).render(edition)
    raw = MessageTemplate.from_variant(variant, settings, edition).personalise(personal())
    text, html = bodies(parsed(raw))
    assert "tok1" not in text.split("Manage your preferences:")[0]
    h1 = lxml.html.document_fromstring(html).xpath("//h1")[0].text_content()
    assert "Before NLPH\u20607unsubscribe_url7 after NLPH\u20607bogus7" in h1
    assert "Before NLPH\u20607unsubscribe_url7 after" in text


names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=80)


@given(name=names)
@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_printable_name_round_trips(
    template: MessageTemplate, variant: RenderedVariant, name: str
) -> None:
    who = personal(name=name)
    raw = template.personalise(who)
    assert display_name(raw) == name.strip()
    assert bodies(parsed(raw)) == expected(variant, who)
