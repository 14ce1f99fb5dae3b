"""The documented recovery bound per preset holds, jitter and breaker included (FakeClock).

The destination fails every attempt until it is back, either at once (5xx) or
by hanging until the 30 s request timeout; the first attempt after it is back
succeeds. Measured: time from "back" to the first successful write.
"""

import math
import random

import pytest

from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from tests.core.fake_time import FakeClock

TIMEOUT = 30.0  # the sinks' request timeout
HOUR = 3600.0
#: preset -> documented worst case from the destination back to the first success.
BOUNDS = {"infinite": 300.0, "aggressive": 300.0, "conservative": 600.0}


def recovery(preset: str, outage: float, *, hung: bool, seed: int) -> float:
    """Seconds from the destination's return to the first successful write."""
    clock = FakeClock()
    res = Resilience(build_policy(preset, {}), clock, rng=random.Random(seed))
    back = clock.monotonic() + outage
    fault = (
        DeliveryError(ErrorCategory.TIMEOUT, "timed out")
        if hung
        else DeliveryError(ErrorCategory.SERVER, "HTTP 503", status=503)
    )
    while True:
        wait = res.before_attempt()
        assert wait != math.inf
        if wait > 0:
            clock.advance(wait)
            continue
        if clock.monotonic() >= back:
            res.on_success()
            return clock.monotonic() - back
        if hung:
            # Worst case: the request sent just before the return hangs to its timeout.
            clock.advance(TIMEOUT)
        res.on_failure(fault)


def test_presets_document_their_bound() -> None:
    """recovery_bound(30 s): infinite 300, aggressive 300, conservative 600, limited None."""
    for preset, bound in BOUNDS.items():
        assert build_policy(preset).recovery_bound(TIMEOUT) == bound
    assert build_policy("limited").recovery_bound(TIMEOUT) is None


@pytest.mark.parametrize("preset", sorted(BOUNDS))
@pytest.mark.parametrize("hung", [False, True], ids=["5xx", "hung"])
def test_recovery_within_the_bound(preset: str, *, hung: bool) -> None:
    """300 outages (0 to 6 h, random jitter): worst recovery <= the preset's bound.

    Figures (asserted): infinite and aggressive <= 300 s, conservative <= 600 s,
    for 5xx and hung outages alike, with the breaker opening and re-opening.
    """
    rng = random.Random(f"{preset}{hung}")
    worst = 0.0
    for seed in range(300):
        outage = rng.uniform(0, 6 * HOUR)
        worst = max(worst, recovery(preset, outage, hung=hung, seed=seed))
    assert worst <= BOUNDS[preset]
    # The bound is tight enough to mean something: long outages come close to it.
    assert worst >= BOUNDS[preset] * 0.5
