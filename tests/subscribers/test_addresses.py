"""Address normalisation: one person per address; the fast path agrees with email-validator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from newsletter.core.errors import SubscriberInputError
from subscribers.addresses import _slow, normalise_address


@pytest.mark.parametrize(
    ("raw", "email", "key"),
    [
        ("John.Smith@Example.COM", "John.Smith@example.com", "john.smith@example.com"),
        ("  ann@example.com \n", "ann@example.com", "ann@example.com"),
        ("josé@bücher.de", "josé@bücher.de", "josé@xn--bcher-kva.de"),
        ("JOSÉ@BÜCHER.DE", "JOSÉ@bücher.de", "josé@xn--bcher-kva.de"),
        ("a@xn--bcher-kva.de", "a@bücher.de", "a@xn--bcher-kva.de"),
        ("Postmaster@Example.com", "postmaster@example.com", "postmaster@example.com"),
        ("用户@例子.广告", "用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
    ],
)
def test_normal_form_and_key(raw: str, email: str, key: str) -> None:
    address = normalise_address(raw)
    assert address.email == email
    assert address.key == key


def test_the_same_person_however_spelled() -> None:
    spellings = ["ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", "Ann.Lee@Example.Com "]
    assert len({normalise_address(s).key for s in spellings}) == 1


@pytest.mark.parametrize(
    "raw",
    ["", "ann", "ann@", "@example.com", "ann@@example.com", "ann@localhost", "a..b@example.com",
     ".a@example.com", "ann@exa mple.com", "ann@-example.com",
     "ann@" + "a" * 250 + ".com", "ann@example..com"],
)  # fmt: skip
def test_invalid_addresses_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(SubscriberInputError) as info:
        normalise_address(raw)
    assert "is not a valid email address" in str(info.value)


_local_chars = st.sampled_from([*list("abcXYZ019_+-.é'!#"), "ü", "用"])
_domain_parts = st.sampled_from(
    ["example", "EXAMPLE", "bücher", "xn--bcher-kva", "mail-1", "-bad", "a" * 63, "b" * 64, "com",
     "co", "uk", "例子", ""]
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    local=st.text(_local_chars, min_size=0, max_size=70),
    labels=st.lists(_domain_parts, min_size=1, max_size=5),
)
@example(local="a" * 64, labels=["b" * 63, "c" * 63, "d" * 63, "com"])
@example(local="ann", labels=["localhost"])
def test_fast_path_agrees_with_email_validator(local: str, labels: list[str]) -> None:
    raw = local + "@" + ".".join(labels)
    try:
        slow = _slow(raw)
    except SubscriberInputError:
        with pytest.raises(SubscriberInputError):
            normalise_address(raw)
        return
    assert normalise_address(raw) == slow
