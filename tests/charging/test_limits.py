"""The offered current: the least limit that applies, and the site limit shared between EVSEs (6 A or nothing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.charging.limits import MIN_OFFER_A, least, share_site, usable


def test_least_ignores_unset_limits() -> None:
    assert least([None, 16, 32.0, None]) == 16.0
    assert least([None, None]) is None
    assert least([]) is None
    assert least([0, 16]) == 0.0


@pytest.mark.parametrize(("limit", "offer"), [(None, None), (0, 0.0), (5.99, 0.0), (6, 6.0), (16, 16.0)])
def test_a_limit_under_6_a_offers_nothing(limit: float | None, offer: float | None) -> None:
    assert usable(limit) == offer


def test_no_site_limit_gives_no_shares() -> None:
    assert share_site(None, [1, 2], {}) == {}


def test_an_equal_share_and_the_rest_left_by_a_modest_evse() -> None:
    assert share_site(32, [1, 2], {}) == {1: 16.0, 2: 16.0}
    assert share_site(32, [1, 2, 3], {1: 6.0}) == {1: 6.0, 2: 13.0, 3: 13.0}
    assert share_site(40, [1, 2], {1: 10.0, 2: 10.0}) == {1: 10.0, 2: 10.0}


def test_when_6_a_each_does_not_fit_the_latest_sessions_get_nothing() -> None:
    assert share_site(16, [3, 1, 2], {}) == {3: 8.0, 1: 8.0, 2: 0.0}
    assert share_site(5, [1, 2], {}) == {1: 0.0, 2: 0.0}
    assert share_site(12, [1, 2, 3], {}) == {1: 6.0, 2: 6.0, 3: 0.0}


def test_a_paused_evse_takes_nothing_and_keeps_its_place() -> None:
    assert share_site(16, [1, 2], {1: 0.0}) == {1: 0.0, 2: 16.0}


@given(site=st.floats(0, 200), wanting=st.lists(st.integers(1, 8), unique=True, max_size=8),
       own=st.dictionaries(st.integers(1, 8), st.one_of(st.none(), st.floats(0, 80))))
def test_shares_never_exceed_the_site_or_an_own_limit_and_are_0_or_at_least_6_a(
        site: float, wanting: list[int], own: dict[int, float | None]) -> None:
    shares = share_site(site, wanting, own)
    assert set(shares) == set(wanting)
    assert sum(shares.values()) <= site + 1e-6
    for evse_id, amount in shares.items():
        assert amount == 0 or amount >= MIN_OFFER_A - 1e-9
        limit = own.get(evse_id)
        assert limit is None or amount <= limit + 1e-9
    served = [e for e in wanting if shares[e] > 0]
    assert served == wanting[:len(served)] or any(own.get(e) == 0 for e in wanting)  # first come, first served
