"""The links in every email: preferences, unsubscribe and confirm, genuine, tampered and stale."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from newsletter import privacy
from subscribers import links, store
from subscribers.importer import import_file
from subscribers.model import SubscriberStatus
from subscribers.tokens import Purpose, make_token
from tests.plugins.smtp import SMTPServer
from tests.support.web import (
    LINK_RE,
    WebEnv,
    add_confirmed,
    asgi_client,
    csrf_token,
    find_person,
    get,
    path_of,
    sign_up,
)


async def test_hostile_name_is_escaped_on_the_preferences_page(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    person = add_confirmed(env, "h@example.com", name=hostile)
    page = await client.get(
        path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    )
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    # the link never expires and may be forwarded: the page shows the address masked
    assert "h@example.com" not in page.text
    assert "h•••@example.com" in page.text


async def test_preferences_change_topics_and_name(env: WebEnv, client: httpx.AsyncClient) -> None:
    person = add_confirmed(env, "p@example.com", name="Old Name", topics=["crime"])
    path = path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    page = await client.get(path)
    assert re.search(r'value="crime" checked', page.text)
    saved = await client.post(
        path,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "save",
            "name": "New Name",
            "topic": ["economy", "transport"],
        },
    )
    assert saved.status_code == 200
    assert "Your preferences are saved" in saved.text
    after = get(env, person.id)
    assert after.name == "New Name"
    assert after.topics == frozenset({"economy", "transport"})
    assert after.status is SubscriberStatus.CONFIRMED
    # a forged form changes nothing
    forged = await client.post(path, data={"action": "save", "name": "Forged", "topic": "crime"})
    assert forged.status_code == 400
    assert get(env, person.id).name == "New Name"
    # no topics at all means everything
    await client.post(path, data={"csrf_token": csrf_token(page.text), "name": "New Name"})
    assert get(env, person.id).topics == frozenset()


async def test_preferences_page_can_unsubscribe(env: WebEnv, client: httpx.AsyncClient) -> None:
    person = add_confirmed(env, "q@example.com")
    path = path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    page = await client.get(path)
    left = await client.post(
        path, data={"csrf_token": csrf_token(page.text), "action": "unsubscribe"}
    )
    assert left.status_code == 200
    assert "You are unsubscribed" in left.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("route", ["confirm", "unsubscribe", "preferences"])
async def test_tampered_and_wrong_purpose_tokens_get_a_friendly_400(
    env: WebEnv, client: httpx.AsyncClient, route: str
) -> None:
    person = add_confirmed(env, "t@example.com")
    genuine = make_token(env.settings.secret(), route, person.id, person.email)
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    other = "preferences" if route != "preferences" else "unsubscribe"
    wrong_purpose = make_token(env.settings.secret(), other, person.id, person.email)
    for token in (tampered, wrong_purpose, "garbage", "a.b.c.d"):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/{route}/{token}")
            assert response.status_code == 400, (method, token)
            assert "This link does not work" in response.text
            assert "Traceback" not in response.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_an_expired_confirm_link_says_so(env: WebEnv, client: httpx.AsyncClient) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "late@example.com", secret=env.settings.secret())
    old = datetime.now(UTC) - timedelta(days=8)
    token = make_token(env.settings.secret(), Purpose.CONFIRM, person.id, person.email, old)
    path = f"/confirm/{token}"
    form = await client.get("/")
    for response in (
        await client.get(path),
        await client.post(path, data={"csrf_token": csrf_token(form.text)}),
    ):
        assert response.status_code == 400
        assert "expired" in response.text
    assert get(env, person.id).status is SubscriberStatus.PENDING


async def test_following_a_confirm_link_changes_nothing(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "scanned@example.com", secret=env.settings.secret())
        before = store.events(conn, person.id)
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    for _ in range(3):  # a scanner may fetch it more than once, with HEAD too
        assert (await client.get(path)).status_code == 200
        assert (await client.head(path)).status_code == 200
    after = get(env, person.id)
    assert after == person
    with env.engine.connect() as conn:
        assert store.events(conn, person.id) == before


async def test_the_confirm_button_is_csrf_checked(env: WebEnv, client: httpx.AsyncClient) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "csrf.confirm@example.com", secret=env.settings.secret())
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    page = await client.get(path)
    token = csrf_token(page.text)
    refused = [
        await client.post(path, data={}),
        await client.post(path, data={"csrf_token": "forged"}),
        await client.post(
            path, data={"csrf_token": token}, headers={"sec-fetch-site": "cross-site"}
        ),
    ]
    async with asgi_client(env.app) as stranger:  # a valid token, but not this browser's cookie
        refused.append(await stranger.post(path, data={"csrf_token": token}))
    for response in refused:
        assert response.status_code == 400
        assert "This form could not be sent" in response.text
    assert get(env, person.id).status is SubscriberStatus.PENDING
    done = await client.post(path, data={"csrf_token": token})
    assert "You are subscribed" in done.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_confirm_link_of_someone_who_left_does_not_resubscribe(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "gone@example.com")
    with env.engine.begin() as conn:
        store.unsubscribe(conn, person.id)
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    shown = await client.get(path)
    assert shown.status_code == 400
    assert "Confirm my subscription" not in shown.text
    form = await client.get("/")
    pressed = await client.post(path, data={"csrf_token": csrf_token(form.text)})
    assert pressed.status_code == 400
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


async def test_someone_who_left_signs_up_again_and_is_back_only_after_confirming(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    person = add_confirmed(env, "back@example.com", topics=["crime"])
    with env.engine.begin() as conn:
        store.unsubscribe(conn, person.id)
    answer = await sign_up(client, email="back@example.com", topic=["economy"])
    assert "Check your inbox" in answer.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    text = smtp_server.received[0].message().get_body(("plain",))
    assert text is not None
    assert "Economy" in text.get_content()
    (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
    page = await client.get(urlsplit(confirm).path)
    assert "Confirm my subscription" in page.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    done = await client.post(urlsplit(confirm).path, data={"csrf_token": csrf_token(page.text)})
    assert "You are subscribed" in done.text
    back = get(env, person.id)
    assert (back.status, back.topics) == (SubscriberStatus.CONFIRMED, frozenset({"economy"}))


async def test_an_erased_person_is_suppressed_until_they_confirm_asign_up(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    with env.engine.begin() as conn:
        store.add(conn, "erased.web@example.com", secret=env.settings.secret(), confirmed=True)
        privacy.erase(conn, "erased.web@example.com", secret=env.settings.secret())
    await sign_up(client, email="erased.web@example.com")
    pending = find_person(env, "erased.web@example.com")
    assert pending is not None
    assert pending.status is SubscriberStatus.PENDING
    csv = tmp_path / "old-list.csv"
    csv.write_text("email,status\nerased.web@example.com,confirmed\n")
    refused = import_file(env.engine, csv, secret=env.settings.secret(), confirmed=True)
    assert (refused.skipped, refused.updated) == (1, 0)
    assert get(env, pending.id).status is SubscriberStatus.PENDING
    text = smtp_server.received[0].message().get_body(("plain",))
    assert text is not None
    (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
    page = await client.get(urlsplit(confirm).path)
    await client.post(urlsplit(confirm).path, data={"csrf_token": csrf_token(page.text)})
    assert get(env, pending.id).status is SubscriberStatus.CONFIRMED
    accepted = import_file(env.engine, csv, secret=env.settings.secret())
    assert (accepted.skipped, accepted.unchanged) == (0, 1)
