"""The import's quick paths give the same answers as the careful ones they stand in for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.core.errors import SubscriberInputError
from newsletter.core.keys import SigningSecret
from subscribers import suppressions
from subscribers.bulk import copy_text
from subscribers.fields import MAX_NAME, clean_name
from subscribers.importrows import Layout, parse_row


def _clean_name(cell: str) -> str | type[SubscriberInputError] | None:
    try:
        return clean_name(cell)
    except SubscriberInputError:
        return SubscriberInputError


def _parsed_name(cell: str) -> str | type[SubscriberInputError] | None:
    layout = Layout.from_header(["email", "name"])
    try:
        return parse_row(layout, ["ann@example.com", cell], 2).name
    except SubscriberInputError:
        return SubscriberInputError


_names = st.one_of(
    st.text(max_size=MAX_NAME + 5),
    st.text(st.sampled_from(" \t\n=?\u202eAbé\u00a0\u200b\x85"), max_size=12),
    st.builds(lambda n: "x" * n, st.integers(MAX_NAME - 2, MAX_NAME + 2)),
)


@given(_names)
def test_a_name_reads_as_clean_name_reads_it(cell: str) -> None:
    assert _parsed_name(cell) == _clean_name(cell)


@pytest.mark.parametrize(
    "cell", ["", "  ", "Ann Lee", " Zoë ", "=?utf-8?b?QW5u?=", "Ann\u202egnp", "a\nb"]
)
def test_names_at_the_edges(cell: str) -> None:
    assert _parsed_name(cell) == _clean_name(cell)


@given(st.text(max_size=40), st.binary(min_size=1, max_size=40))
def test_hashers_give_the_stored_hashes(key: str, secret: bytes) -> None:
    retired = b"retired-" + secret
    rotated = SigningSecret(secret, [retired])
    current, previous = suppressions.hashers(rotated)
    assert current(key) == suppressions.address_hash(secret, key)
    assert previous(key) == suppressions.address_hash(retired, key)


def test_copy_text_keeps_nulls_apart_from_text() -> None:
    text = copy_text([("a,b", None, 'say "hi"', "two\nlines", "[]")])
    assert text == '"a,b",,"say ""hi""","two\nlines",[]\n'
