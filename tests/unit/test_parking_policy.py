"""The parking policy's backoff: exponential, capped, cut by a bounded random jitter."""

from __future__ import annotations

import random

import pytest

from tillflow.engine import InvalidEvent, Parking


def test_delays_double_within_their_jitter_until_the_cap() -> None:
    policy = Parking(max_attempts=8, base=0.1, cap=1.0, jitter=0.5, rng=random.Random(7))
    for attempts in range(1, 8):
        full = min(1.0, 0.1 * 2 ** (attempts - 1))
        delays = [policy.retry_after(attempts) for _ in range(200)]
        assert all(d is not None and full * 0.5 <= d <= full for d in delays)
        spread = [d for d in delays if d is not None]
        assert max(spread) - min(spread) > full * 0.3  # jitter, not a constant


def test_a_seeded_policy_repeats_its_delays() -> None:
    first = Parking(rng=random.Random(3))
    second = Parking(rng=random.Random(3))
    assert [first.retry_after(n) for n in range(1, 5)] == [
        second.retry_after(n) for n in range(1, 5)
    ]


def test_no_jitter_gives_the_plain_backoff() -> None:
    policy = Parking(max_attempts=4, base=0.05, cap=5.0, jitter=0.0)
    assert [policy.retry_after(n) for n in range(1, 5)] == [0.05, 0.1, 0.2, None]


def test_past_its_attempts_the_policy_parks() -> None:
    policy = Parking(max_attempts=2)
    assert policy.retry_after(1) is not None
    assert policy.retry_after(2) is None


@pytest.mark.parametrize(
    ("field", "settings"),
    [("max_attempts", {"max_attempts": 0}), ("jitter", {"jitter": 1.5}), ("base", {"base": -1})],
)
def test_unusable_settings_are_refused_naming_the_field(
    field: str, settings: dict[str, float]
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        Parking(**settings)  # type: ignore[arg-type]
    assert refused.value.field == field
