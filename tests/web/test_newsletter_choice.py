"""Choosing newsletters on the readers' pages, over HTTP against a real uvicorn server:
the signup form's and the preferences page's checkboxes, a forged id refused with
nothing changed, and a one-newsletter site that shows no choice at all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from newsletter.core.config import Settings
from newsletter.core.newsletters import Newsletter
from subscribers import subscriptions
from subscribers.links import preferences_url
from subscribers.states import SubscriberStatus
from tests.plugins.smtp import SMTPServer
from tests.support.web import (
    WebEnv,
    add_confirmed,
    csrf_token,
    find_person,
    get,
    make_env,
    path_of,
    running_server,
    wait_for,
)

LISTS = [
    Newsletter(id="daily", name="The Daily Briefing", description="Every morning."),
    Newsletter(id="breaking", name="Breaking News"),
]


@pytest.fixture
def several(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    """The app of a site that runs two newsletters (daily, the default, and breaking)."""
    return make_env(settings.model_copy(update={"newsletters": LISTS}), smtp_server.url)


@pytest.fixture
def http(several: WebEnv) -> Iterator[httpx.Client]:
    """A client of ``several``'s app served by a real uvicorn."""
    with running_server(several.app) as url, httpx.Client(base_url=url) as client:
        yield client


def _held(env: WebEnv, subscriber_id: int) -> dict[str, str]:
    with env.engine.connect() as conn:
        return {s.newsletter_id: s.status.value for s in subscriptions.of(conn, subscriber_id)}


def _signup(http: httpx.Client, email: str, newsletters: list[str]) -> httpx.Response:
    form = http.get("/")
    data = {"csrf_token": csrf_token(form.text), "consent": "yes", "email": email}
    return http.post("/signup", data={**data, "newsletter": newsletters})


def _recorded(env: WebEnv, email: str) -> int:
    """The id of the person a signup stores (recorded after the answer, as it is sent)."""
    wait_for(lambda: find_person(env, email) is not None, f"the signup of {email}")
    person = find_person(env, email)
    assert person is not None
    return person.id


def _preferences(env: WebEnv, subscriber_id: int, email: str) -> str:
    """The path of the person's preferences page (their signed link)."""
    return path_of(env.settings, preferences_url(env.settings, subscriber_id, email))


def test_signup_offers_each_newsletter_and_subscribes_to_the_ticked_ones_only(
    several: WebEnv, http: httpx.Client
) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert 'name="newsletter" value="daily" checked' in page.text  # the default, ticked
    assert 'name="newsletter" value="breaking"' in page.text
    assert 'name="newsletter" value="breaking" checked' not in page.text
    assert "Every morning." in page.text
    assert _signup(http, "bea@example.com", ["breaking"]).status_code == 200
    bea = _recorded(several, "bea@example.com")
    assert _held(several, bea) == {"breaking": "subscribed"}  # B only, not the default
    assert _signup(http, "both@example.com", ["daily", "breaking"]).status_code == 200
    both = _recorded(several, "both@example.com")
    assert _held(several, both) == {"daily": "subscribed", "breaking": "subscribed"}


@pytest.mark.parametrize("chosen", [["breaking", "admin"], ["daily.x"], []])
def test_signup_refuses_a_forged_or_empty_choice_and_stores_nobody(
    several: WebEnv, http: httpx.Client, chosen: list[str]
) -> None:
    answer = _signup(http, "eve@example.com", chosen)
    assert answer.status_code == 400
    said = "Choose newsletters from the list." if chosen else "Choose at least one newsletter."
    assert said in answer.text
    # a valid signup after it is recorded; the refused one never is
    assert _signup(http, "fay@example.com", ["daily"]).status_code == 200
    _recorded(several, "fay@example.com")
    assert find_person(several, "eve@example.com") is None


def test_preferences_untick_one_newsletter_keeps_the_other(
    several: WebEnv, http: httpx.Client
) -> None:
    ann = add_confirmed(several, "ann@example.com", newsletters=["daily", "breaking"])
    path = _preferences(several, ann.id, ann.email)
    page = http.get(path)
    assert page.status_code == 200
    assert 'name="newsletter" value="daily" checked' in page.text
    assert 'name="newsletter" value="breaking" checked' in page.text
    fields = {"csrf_token": csrf_token(page.text), "newsletters-shown": "1", "name": "Ann"}
    saved = http.post(path, data={**fields, "newsletter": ["breaking"]})
    assert saved.status_code == 200, saved.text
    assert "Your preferences are saved." in saved.text
    assert _held(several, ann.id) == {"daily": "unsubscribed", "breaking": "subscribed"}
    assert get(several, ann.id).status is SubscriberStatus.CONFIRMED  # still a reader
    again = http.get(path)
    assert 'name="newsletter" value="daily" checked' not in again.text
    assert 'name="newsletter" value="breaking" checked' in again.text


@pytest.mark.parametrize("chosen", [["daily", "admin"], ["breaking", "daily.evil"]])
def test_preferences_refuse_a_forged_id_and_change_nothing(
    several: WebEnv, http: httpx.Client, chosen: list[str]
) -> None:
    ann = add_confirmed(several, "ann@example.com", name="Ann", newsletters=["daily", "breaking"])
    path = _preferences(several, ann.id, ann.email)
    page = http.get(path)
    fields = {"csrf_token": csrf_token(page.text), "newsletters-shown": "1", "name": "Changed"}
    answer = http.post(path, data={**fields, "newsletter": chosen})
    assert answer.status_code == 400
    assert "Choose newsletters from the list." in answer.text
    assert _held(several, ann.id) == {"daily": "subscribed", "breaking": "subscribed"}
    assert get(several, ann.id).name == "Ann"  # nothing half-saved


def test_a_one_newsletter_site_shows_no_choice(settings: Settings, smtp_server: SMTPServer) -> None:
    env = make_env(settings, smtp_server.url)
    ann = add_confirmed(env, "ann@example.com")
    with running_server(env.app) as url, httpx.Client(base_url=url) as http:
        signup = http.get("/")
        assert signup.status_code == 200
        assert 'name="newsletter"' not in signup.text
        preferences = http.get(_preferences(env, ann.id, ann.email))
        assert preferences.status_code == 200
        assert 'name="newsletter"' not in preferences.text
        assert 'name="newsletters-shown"' not in preferences.text
        # a signup without any newsletter field gets the site's one newsletter
        form = {"csrf_token": csrf_token(signup.text), "consent": "yes"}
        assert http.post("/signup", data={**form, "email": "cy@example.com"}).status_code == 200
        cy = _recorded(env, "cy@example.com")
    assert _held(env, cy) == {"daily": "subscribed"}
