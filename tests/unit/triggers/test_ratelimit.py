"""The per-pipeline sliding window of triggered runs."""

from sluice.triggers.ratelimit import SlidingWindow


def test_a_full_window_says_how_long_until_its_oldest_start_leaves_it() -> None:
    window = SlidingWindow()
    for moment in (0.0, 10.0):
        assert window.wait_needed("p", 2, moment) == 0
        window.record("p", moment)
    assert window.wait_needed("p", 2, 30.0) == 30.0
    assert window.wait_needed("p", 2, 60.5) == 0
    assert window.wait_needed("other", 2, 30.0) == 0
    assert window.wait_needed("p", None, 30.0) == 0


def test_a_start_that_did_not_happen_is_given_back() -> None:
    window = SlidingWindow()
    window.record("p", 1.0)
    window.forget("p", 1.0)
    assert window.wait_needed("p", 1, 2.0) == 0
