"""Tests for the staged retry policy and schedule."""

import random
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.retry import (
    DEFAULT_PRESET,
    JITTER_FRACTION,
    OVERRIDE_KEYS,
    OVERRIDE_SPECS,
    PRESETS,
    BreakerConfig,
    JitterMode,
    PolicyError,
    RetryPolicy,
    RetrySchedule,
    RetryStage,
    StageConfig,
    apply_jitter,
    build_policy,
    preset_values,
)

NO_JITTER = {"jitter": "none"}


def delays(policy: RetryPolicy, n: int) -> list[float]:
    sched = RetrySchedule(policy, random.Random(1))
    out = []
    for _ in range(n):
        d = sched.next_delay()
        assert d is not None
        out.append(d)
    return out


def test_default_preset_is_infinite() -> None:
    assert DEFAULT_PRESET == "infinite"
    policy = build_policy()
    assert policy.preset == "infinite"
    assert policy.max_retries is None
    assert policy.breaker.enabled
    assert policy.jitter is JitterMode.PROPORTIONAL
    assert policy.retry_after_cap == 270
    assert [s.name for s in policy.stages] == list(RetryStage)


def test_infinite_stage_progression_and_delays() -> None:
    policy = build_policy("infinite", NO_JITTER)
    got = delays(policy, 40)
    rapid = [min(1.0 * 1.5**k, 5.0) for k in range(10)]
    moderate = [min(5.0 * 2.0**k, 30.0) for k in range(20)]
    persistent = [min(30.0 * 2.0**k, 225.0) for k in range(10)]
    assert got == rapid + moderate + persistent
    assert got[:5] == [1.0, 1.5, 2.25, 3.375, 5.0]
    # Stays in persistent for ever at the cap.
    sched = RetrySchedule(policy)
    for _ in range(5_000):
        sched.next_delay()
    assert sched.stage is RetryStage.PERSISTENT
    assert sched.next_delay() == 225.0
    assert not sched.gave_up


def test_stage_and_attempt_tracking() -> None:
    sched = RetrySchedule(build_policy("infinite", NO_JITTER))
    assert sched.stage is None
    assert sched.stage_attempt == 0
    seen = []
    last = None
    for _ in range(32):
        last = sched.next_delay()
        seen.append((sched.stage, sched.stage_attempt))
    assert seen[0] == (RetryStage.RAPID, 1)
    assert seen[9] == (RetryStage.RAPID, 10)
    assert seen[10] == (RetryStage.MODERATE, 1)
    assert seen[29] == (RetryStage.MODERATE, 20)
    assert seen[30] == (RetryStage.PERSISTENT, 1)
    assert sched.failures == 32
    assert last == 60.0


def test_aggressive_preset() -> None:
    policy = build_policy("aggressive", NO_JITTER)
    assert not policy.breaker.enabled
    got = delays(policy, 61)
    assert max(got[:20]) == 3.0
    assert got[20] == 5.0
    assert max(got[20:60]) == 15.0
    assert got[60] == 30.0


def test_conservative_preset() -> None:
    policy = build_policy("conservative", NO_JITTER)
    assert policy.breaker.enabled
    got = delays(policy, 40)
    assert got[4] == 5.0  # 5 rapid, then moderate
    assert got[5] == 5.0
    assert got[15] == 30.0  # first persistent
    assert max(got) == 475.0


def test_limited_preset_gives_up_and_reset_resumes() -> None:
    policy = build_policy("limited", NO_JITTER)
    assert policy.max_retries == 10
    sched = RetrySchedule(policy)
    got = [sched.next_delay() for _ in range(10)]
    assert got == [min(1.5**k, 5.0) for k in range(10)]
    assert sched.stage is RetryStage.RAPID
    assert sched.next_delay() is None
    assert sched.gave_up
    assert sched.next_delay() is None
    assert sched.failures == 10
    sched.reset()
    assert not sched.gave_up
    assert sched.next_delay() == 1.0


def test_success_resets_to_first_stage() -> None:
    sched = RetrySchedule(build_policy("infinite", NO_JITTER))
    for _ in range(25):
        sched.next_delay()
    assert sched.stage is RetryStage.MODERATE
    sched.reset()
    assert sched.stage is None
    assert sched.failures == 0
    assert sched.next_delay() == 1.0
    assert sched.stage is RetryStage.RAPID


def test_overrides_apply_per_key() -> None:
    policy = build_policy(
        "conservative",
        {
            "rapid_attempts": 2,
            "rapid_base_delay": 2,
            "rapid_max_delay": 2.5,
            "rapid_multiplier": 1.0,
            "moderate_attempts": 1.0,  # UI may send whole floats
            "persistent_base_delay": 100,
            "persistent_max_delay": 100,
            "breaker_enabled": False,
            "breaker_failure_threshold": 7,
            "breaker_reset_timeout": 10,
            "breaker_success_threshold": 2,
            "breaker_max_reset_timeout": 20,
            "jitter": JitterMode.NONE,
            "retry_after_cap": 30,
            "max_retries": None,
        },
    )
    assert delays(policy, 4) == [2.0, 2.0, 5.0, 100.0]
    assert policy.breaker == BreakerConfig(
        enabled=False,
        failure_threshold=7,
        reset_timeout=10,
        success_threshold=2,
        max_reset_timeout=20,
    )
    assert isinstance(policy.stages[1].attempts, int)
    assert policy.retry_after_cap == 30.0
    flat = policy.to_flat()
    assert flat["rapid_attempts"] == 2
    assert flat["max_retries"] == 0
    assert flat["jitter"] == "none"
    assert "persistent_attempts" not in flat
    # Round trip through the flat view.
    assert build_policy("conservative", flat) == policy


def test_presets_are_complete_and_buildable() -> None:
    assert set(PRESETS) == {"infinite", "aggressive", "conservative", "limited"}
    for name, preset in PRESETS.items():
        assert preset.description
        assert set(preset.values) == set(OVERRIDE_KEYS)
        policy = build_policy(name, {})
        assert policy.to_flat() == {
            k: (float(v) if OVERRIDE_KEYS[k].type is float else v) for k, v in preset.values.items()
        }
    assert preset_values("aggressive")["rapid_attempts"] == 20


def test_override_specs_describe_form() -> None:
    assert [s.key for s in OVERRIDE_SPECS] == list(OVERRIDE_KEYS)
    for spec in OVERRIDE_SPECS:
        assert spec.type in (int, float, bool, str)
        assert spec.description
        if spec.type is str:
            assert spec.choices
    assert OVERRIDE_KEYS["jitter"].choices == ("none", "proportional", "full")
    assert OVERRIDE_KEYS["rapid_multiplier"].minimum == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"rapid_base_delay": -1}, "rapid_base_delay"),
        ({"moderate_max_delay": -5}, "moderate_max_delay"),
        ({"persistent_max_delay": 10}, "persistent_max_delay"),  # < base 30
        ({"rapid_max_delay": 0.5}, "rapid_max_delay"),  # < base 1
        ({"rapid_multiplier": 0.9}, "rapid_multiplier"),
        ({"moderate_attempts": 0}, "moderate_attempts"),
        ({"rapid_attempts": 1.5}, "rapid_attempts"),
        ({"rapid_attempts": True}, "rapid_attempts"),
        ({"rapid_attempts": "10"}, "rapid_attempts"),
        ({"rapid_base_delay": float("nan")}, "rapid_base_delay"),
        ({"rapid_base_delay": 1e9}, "rapid_base_delay"),
        ({"breaker_failure_threshold": 0}, "breaker_failure_threshold"),
        ({"breaker_success_threshold": 0}, "breaker_success_threshold"),
        ({"breaker_reset_timeout": 0}, "breaker_reset_timeout"),
        ({"breaker_max_reset_timeout": 100}, "breaker_max_reset_timeout"),  # < reset 240
        ({"breaker_enabled": "yes"}, "breaker_enabled"),
        ({"jitter": "sometimes"}, "jitter"),
        ({"jitter": 1}, "jitter"),
        ({"retry_after_cap": -1}, "retry_after_cap"),
        ({"max_retries": -1}, "max_retries"),
        ({"persistent_attempts": 5}, "persistent_attempts"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_validation_errors_name_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyError) as info:
        build_policy("infinite", overrides)
    assert info.value.key == key
    assert isinstance(info.value, ValueError)
    assert key in str(info.value)
    assert info.value.message


def test_unknown_preset() -> None:
    with pytest.raises(PolicyError, match="unknown preset") as info:
        build_policy("forever", {})
    assert info.value.key == "preset"


def test_dataclass_level_validation() -> None:
    stage = StageConfig(name=RetryStage.RAPID, attempts=1, base_delay=1, max_delay=1, multiplier=1)
    with pytest.raises(PolicyError) as info:
        RetryPolicy(stages=())
    assert info.value.key == "stages"
    with pytest.raises(PolicyError) as info:
        RetryPolicy(stages=(stage,), max_retries=0)
    assert info.value.key == "max_retries"
    with pytest.raises(PolicyError) as info:
        RetryPolicy(stages=(stage,), retry_after_cap=float("inf"))
    assert info.value.key == "retry_after_cap"
    with pytest.raises(PolicyError) as info:
        StageConfig(
            name=RetryStage.MODERATE, attempts=1, base_delay=1, max_delay=float("inf"), multiplier=1
        )
    assert info.value.key == "moderate_max_delay"
    with pytest.raises(PolicyError) as info:
        BreakerConfig(reset_timeout=10, max_reset_timeout=float("nan"))
    assert info.value.key == "breaker_max_reset_timeout"
    for kwargs, key in [
        ({"base_delay": -1.0}, "rapid_base_delay"),
        ({"max_delay": -1.0}, "rapid_max_delay"),
        ({"multiplier": float("inf")}, "rapid_multiplier"),
        ({"attempts": 0}, "rapid_attempts"),
    ]:
        params: dict[str, Any] = {
            "attempts": 1,
            "base_delay": 0.0,
            "max_delay": 1.0,
            "multiplier": 1.0,
            **kwargs,
        }
        with pytest.raises(PolicyError) as info:
            StageConfig(name=RetryStage.RAPID, **params)
        assert info.value.key == key
    for bkwargs, key in [
        ({"failure_threshold": 0}, "breaker_failure_threshold"),
        ({"success_threshold": 0}, "breaker_success_threshold"),
        ({"reset_timeout": float("inf")}, "breaker_reset_timeout"),
    ]:
        with pytest.raises(PolicyError) as info:
            BreakerConfig(**bkwargs)
        assert info.value.key == key


def test_last_limited_stage_is_kept_for_ever() -> None:
    # A custom policy whose last stage is limited stays in it.
    policy = RetryPolicy(
        stages=(
            StageConfig(name=RetryStage.RAPID, attempts=2, base_delay=1, max_delay=1, multiplier=1),
            StageConfig(
                name=RetryStage.MODERATE, attempts=2, base_delay=2, max_delay=8, multiplier=2
            ),
        ),
        jitter=JitterMode.NONE,
    )
    assert delays(policy, 7) == [1, 1, 2, 4, 8, 8, 8]
    assert policy.position(7) == (policy.stages[1], 5)


def test_huge_exponent_does_not_overflow() -> None:
    stage = StageConfig(
        name=RetryStage.PERSISTENT, attempts=None, base_delay=1.0, max_delay=50.0, multiplier=10.0
    )
    assert stage.delay_for(10_000) == 50


def test_retry_after_honoured_and_capped() -> None:
    policy = build_policy("infinite", NO_JITTER)
    sched = RetrySchedule(policy)
    assert sched.next_delay(retry_after=42) == 42  # longer than backoff 1 s
    assert sched.next_delay(retry_after=0.5) == 1.5  # backoff wins
    assert sched.next_delay(retry_after=10_000) == 270  # capped
    assert sched.next_delay(retry_after=0) == 3.375  # ignored
    err = DeliveryError(ErrorCategory.RATE_LIMITED, "slow down", status=429, retry_after=77)
    assert sched.delay_for(err) == 77
    capped = RetrySchedule(build_policy("infinite", {**NO_JITTER, "retry_after_cap": 60}))
    assert capped.next_delay(retry_after=120) == 60
    # The cap never shortens our own backoff.
    big = RetrySchedule(
        build_policy(
            "infinite",
            {
                **NO_JITTER,
                "rapid_base_delay": 900,
                "rapid_max_delay": 900,
                "retry_after_cap": 600,
            },
        )
    )
    assert big.next_delay(retry_after=10) == 900


def test_jitter_is_deterministic_with_seeded_rng() -> None:
    policy = build_policy("infinite", {})
    a = [RetrySchedule(policy, random.Random(7)).next_delay() for _ in range(3)]
    b = [RetrySchedule(policy, random.Random(7)).next_delay() for _ in range(3)]
    assert a == b
    assert RetrySchedule(policy).policy is policy


@settings(max_examples=200, deadline=None, database=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.integers(min_value=1, max_value=80),
    preset=st.sampled_from(sorted(PRESETS)),
)
def test_proportional_jitter_bounds(seed: int, n: int, preset: str) -> None:
    policy = build_policy(preset, {"jitter": "proportional"})
    sched = RetrySchedule(policy, random.Random(seed))
    for i in range(1, n + 1):
        d = sched.next_delay()
        if d is None:
            assert policy.max_retries is not None
            assert i > policy.max_retries
            break
        base = policy.base_delay(i)
        assert base * (1 - JITTER_FRACTION) <= d <= base * (1 + JITTER_FRACTION)


@settings(max_examples=200, deadline=None, database=None)
@given(seed=st.integers(min_value=0, max_value=2**32), n=st.integers(min_value=1, max_value=80))
def test_full_jitter_bounds(seed: int, n: int) -> None:
    policy = build_policy("infinite", {"jitter": "full"})
    sched = RetrySchedule(policy, random.Random(seed))
    for i in range(1, n + 1):
        d = sched.next_delay()
        assert d is not None
        assert 0.0 <= d <= policy.base_delay(i)


@settings(max_examples=200, deadline=None, database=None)
@given(
    delay=st.floats(min_value=0, max_value=1e6),
    mode=st.sampled_from(list(JitterMode)),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_apply_jitter_bounds(delay: float, mode: JitterMode, seed: int) -> None:
    got = apply_jitter(delay, mode, random.Random(seed))
    if mode is JitterMode.NONE:
        assert got == delay
    elif mode is JitterMode.FULL:
        assert 0 <= got <= delay
    else:
        assert delay * 0.8 - 1e-9 <= got <= delay * 1.2 + 1e-9


@settings(max_examples=100, deadline=None, database=None)
@given(
    retry_after=st.floats(min_value=0.001, max_value=1e5),
    cap=st.floats(min_value=0, max_value=1e4),
    failures=st.integers(min_value=0, max_value=50),
)
def test_retry_after_property(retry_after: float, cap: float, failures: int) -> None:
    policy = build_policy("infinite", {"jitter": "none", "retry_after_cap": cap})
    sched = RetrySchedule(policy)
    for _ in range(failures):
        sched.next_delay()
    backoff = policy.base_delay(failures + 1)
    got = sched.next_delay(retry_after=retry_after)
    assert got == max(backoff, min(retry_after, cap))
    if backoff <= cap:
        assert got == min(max(backoff, retry_after), cap)
