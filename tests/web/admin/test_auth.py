"""Console access over HTTP: sign-in, sessions, roles, CSRF, throttling, headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from newsletter.core.config import Settings
from newsletter.web.admin.accounts import set_password
from newsletter.web.admin.audit import list_entries
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sessions import SESSION_COOKIE, Session
from tests.plugins.smtp import SMTPServer
from tests.support.web import WebEnv, add_confirmed, asgi_client
from tests.web.admin.kit import PASSWORD, account, console_env, form_token, post, sign_in


@pytest.fixture
def console(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    env = console_env(settings, smtp_server.url)
    account(env, "admin@example.com", Role.ADMIN)
    account(env, "viewer@example.com", Role.VIEWER)
    account(env, "editor@example.com", Role.EDITOR)
    add_confirmed(env, "secret.reader@example.org", name="Hidden Reader")
    return env


@pytest.fixture
async def http(console: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(console.app) as client:
        yield client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/subscribers",
        "/admin/subscribers?q=secret",
        "/admin/subscribers/1",
        "/admin/editions",
        "/admin/audit",
        "/admin/subscribers/export.csv",
        "/admin/editions/x/progress.json",
        "/admin/articles",
        "/admin/articles/import",
        "/admin/editions/x/report",
        "/admin/editions/x/preview/dark",
    ],
)
async def test_unauthenticated_gets_the_login_page_and_no_data(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 401
    assert 'name="password"' in response.text
    assert "secret.reader" not in response.text
    assert "Hidden Reader" not in response.text


async def test_sign_in_sets_a_safe_session_cookie(http: httpx.AsyncClient) -> None:
    wrong = await sign_in(http, "admin@example.com", "not-the-password-at-all")
    assert wrong.status_code == 401
    assert "do not match" in wrong.text
    response = await sign_in(http, "admin@example.com")
    assert response.status_code == 303
    cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # the base URL is http here
    dashboard = await http.get("/admin/")
    assert dashboard.status_code == 200
    assert "Dashboard" in dashboard.text


async def test_secure_cookie_when_the_base_url_is_https(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = console_env(settings, smtp_server.url, base_url="https://testserver")
    account(env, "admin@example.com", Role.ADMIN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="https://testserver"
    ) as client:
        response = await sign_in(client, "admin@example.com")
    cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie


async def test_security_headers_and_csp(http: httpx.AsyncClient) -> None:
    await sign_in(http, "viewer@example.com")
    for path in ("/admin/login", "/admin/"):
        response = await http.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_a_viewer_may_look_but_not_change(http: httpx.AsyncClient) -> None:
    await sign_in(http, "viewer@example.com")
    assert (await http.get("/admin/subscribers")).status_code == 200
    assert (await http.get("/admin/editions/new")).status_code == 403
    response = await post(http, "/admin/", "/admin/editions/new", {"pick": "a1"})
    assert response.status_code == 403


async def test_an_editor_may_not_erase_or_send_to_the_list(http: httpx.AsyncClient) -> None:
    await sign_in(http, "editor@example.com")
    assert (await http.get("/admin/subscribers/1/erase")).status_code == 403
    response = await post(http, "/admin/", "/admin/subscribers/1/erase", {"confirm": "yes"})
    assert response.status_code == 403
    assert (await http.get("/admin/editions/x/send")).status_code == 403


async def test_an_editor_may_erase_when_the_setting_allows(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = console_env(settings, smtp_server.url, console_editors_may_send=True)
    account(env, "editor@example.com", Role.EDITOR)
    person = add_confirmed(env, "gone@example.org")
    async with asgi_client(env.app) as client:
        await sign_in(client, "editor@example.com")
        page = f"/admin/subscribers/{person.id}/erase"
        response = await post(client, page, page, {"confirm": "yes"})
    assert response.status_code == 303


async def test_a_post_without_csrf_is_refused(http: httpx.AsyncClient) -> None:
    await sign_in(http, "admin@example.com")
    response = await http.post("/admin/subscribers/1/unsubscribe", data={})
    assert response.status_code == 400
    forged = await http.post("/admin/subscribers/1/unsubscribe", data={"csrf_token": "x"})
    assert forged.status_code == 400
    login = await http.post("/admin/login", data={"email": "a@example.com", "password": "x"})
    assert login.status_code == 400


async def test_idle_and_old_sessions_end(console: WebEnv, http: httpx.AsyncClient) -> None:
    codec = console.app.state.admin.sessions
    now = time.time()
    idle = Session(1, 0, now - 600, now - 31 * 60)
    old = Session(1, 0, now - 13 * 3600, now - 10)
    fresh = Session(1, 0, now - 600, now - 10)
    for session, status in ((idle, 401), (old, 401), (fresh, 200)):
        http.cookies.set(
            SESSION_COOKIE, codec.dumps(session), domain="testserver.local", path="/admin"
        )
        assert (await http.get("/admin/")).status_code == status
    http.cookies.set(SESSION_COOKIE, "forged.value", domain="testserver.local", path="/admin")
    assert (await http.get("/admin/")).status_code == 401


async def test_a_password_reset_ends_sessions(console: WebEnv, http: httpx.AsyncClient) -> None:
    await sign_in(http, "admin@example.com")
    assert (await http.get("/admin/")).status_code == 200
    with console.engine.begin() as conn:
        set_password(conn, "admin@example.com", "another-long-passphrase-9")
    assert (await http.get("/admin/")).status_code == 401


async def test_logout_ends_the_session(http: httpx.AsyncClient) -> None:
    await sign_in(http, "admin@example.com")
    response = await post(http, "/admin/", "/admin/logout")
    assert response.status_code == 200
    assert "signed out" in response.text
    assert (await http.get("/admin/")).status_code == 401


async def test_sign_in_attempts_are_throttled_per_account(http: httpx.AsyncClient) -> None:
    statuses = [
        (await sign_in(http, "admin@example.com", "wrong-password-guess")).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    # even the right password waits now
    assert (await sign_in(http, "admin@example.com", PASSWORD)).status_code == 429


async def test_sign_in_attempts_are_throttled_per_client(http: httpx.AsyncClient) -> None:
    statuses = [
        (await sign_in(http, f"nobody{i}@example.com", "wrong-password-guess")).status_code
        for i in range(31)
    ]
    assert statuses[-1] == 429
    assert 429 not in statuses[:30]


async def test_the_audit_log_records_who_did_what(console: WebEnv, http: httpx.AsyncClient) -> None:
    await sign_in(http, "admin@example.com")
    await post(http, "/admin/subscribers/1", "/admin/subscribers/1/unsubscribe")
    with console.engine.connect() as conn:
        entries = list_entries(conn)
    actions = [(e.actor, e.action, e.target) for e in entries]
    assert ("admin@example.com", "subscriber.unsubscribe", "subscriber 1") in actions
    page = await http.get("/admin/audit")
    assert "subscriber.unsubscribe" in page.text
    assert "secret.reader" not in str(actions)


def test_form_token_helper() -> None:
    assert form_token('<input name="csrf_token" value="abc">') == "abc"
