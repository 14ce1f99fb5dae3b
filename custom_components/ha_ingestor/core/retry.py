"""Staged retry policy: presets, validation and the per-destination schedule.

A policy has ordered stages (rapid, moderate, persistent). Each stage has its
own number of attempts, base delay, max delay and multiplier; the delay of the
k-th attempt inside a stage is ``min(base * multiplier ** (k - 1), max)``.
Once the limited stages are used up the schedule stays in the last stage
(persistent) for ever, unless the policy sets ``max_retries`` (the
``limited`` preset), in which case it gives up: :meth:`RetrySchedule.next_delay`
returns ``None`` until :meth:`RetrySchedule.reset` (a manual retry). Giving up
never discards data; the spool keeps every point.

Recovery bound: once the destination is back, the first successful write
comes within :meth:`RetryPolicy.recovery_bound` (an attempt in flight may
still time out, then the longest wait: the largest jittered delay, the
breaker's longest open period, the Retry-After cap). The presets are sized so
that this is 5 min (``infinite``, ``aggressive``) or 10 min
(``conservative``) with the 30 s request timeout; ``limited`` stops retrying.

Numbering: the n-th consecutive failure schedules retry number n. With the
default rapid stage of 10 attempts, failures 1..10 get rapid delays and failure
11 the first moderate delay. ``max_retries=10`` means ten retries are scheduled
and the eleventh consecutive failure gives up.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
import math
import random
from typing import Any

from .errors import DeliveryError

#: Fraction used by the default jitter: the delay is multiplied by a factor in
#: ``[1 - JITTER_FRACTION, 1 + JITTER_FRACTION]``.
JITTER_FRACTION = 0.2

DEFAULT_PRESET = "infinite"


class PolicyError(ValueError):
    """A retry policy parameter is invalid; ``key`` names the flat override key."""

    def __init__(self, key: str, message: str) -> None:
        """Create the error for parameter ``key``."""
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class RetryStage(StrEnum):
    """Name of a retry stage."""

    RAPID = "rapid"
    MODERATE = "moderate"
    PERSISTENT = "persistent"


class JitterMode(StrEnum):
    """How a computed delay is randomised.

    ``proportional`` (default) multiplies the delay by a factor in 0.8..1.2:
    delays stay close to the stage schedule, so the retry-stage sensor and the
    "next retry in" attribute remain meaningful to the user, while many
    installations (or fallback endpoints) restarting together still spread
    out. ``full`` draws uniformly from 0..delay (AWS "full jitter"), which
    spreads retries best but makes individual delays unpredictable. ``none``
    is for tests and debugging.
    """

    NONE = "none"
    PROPORTIONAL = "proportional"
    FULL = "full"


@dataclass(frozen=True, slots=True, kw_only=True)
class StageConfig:
    """One retry stage; ``attempts=None`` means unlimited."""

    name: RetryStage
    attempts: int | None
    base_delay: float
    max_delay: float
    multiplier: float

    def __post_init__(self) -> None:
        """Validate the stage; errors name the flat override key."""
        prefix = self.name.value
        if self.attempts is not None and self.attempts < 1:
            raise PolicyError(f"{prefix}_attempts", "must be at least 1")
        if self.base_delay < 0 or not math.isfinite(self.base_delay):
            raise PolicyError(f"{prefix}_base_delay", "must be a finite number >= 0 seconds")
        if self.max_delay < 0 or not math.isfinite(self.max_delay):
            raise PolicyError(f"{prefix}_max_delay", "must be a finite number >= 0 seconds")
        if self.max_delay < self.base_delay:
            raise PolicyError(
                f"{prefix}_max_delay",
                f"must be >= {prefix}_base_delay ({self.base_delay:g} s), got {self.max_delay:g} s",
            )
        if self.multiplier < 1 or not math.isfinite(self.multiplier):
            raise PolicyError(f"{prefix}_multiplier", "must be a finite number >= 1")

    def delay_for(self, attempt: int) -> float:
        """Un-jittered delay of the ``attempt``-th (1-based) retry in this stage."""
        try:
            raw = self.base_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            # Unlimited stages can reach huge exponents; the cap applies anyway.
            return self.max_delay
        return min(raw, self.max_delay)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Circuit breaker settings (see :mod:`.breaker`)."""

    enabled: bool = True
    failure_threshold: int = 50
    reset_timeout: float = 240.0
    success_threshold: int = 3
    max_reset_timeout: float = 270.0

    def __post_init__(self) -> None:
        """Validate the settings; errors name the flat override key."""
        if self.failure_threshold < 1:
            raise PolicyError("breaker_failure_threshold", "must be at least 1")
        if self.success_threshold < 1:
            raise PolicyError("breaker_success_threshold", "must be at least 1")
        if self.reset_timeout <= 0 or not math.isfinite(self.reset_timeout):
            raise PolicyError("breaker_reset_timeout", "must be a finite number > 0 seconds")
        if not math.isfinite(self.max_reset_timeout):
            raise PolicyError("breaker_max_reset_timeout", "must be a finite number of seconds")
        if self.max_reset_timeout < self.reset_timeout:
            raise PolicyError(
                "breaker_max_reset_timeout",
                f"must be >= breaker_reset_timeout ({self.reset_timeout:g} s), "
                f"got {self.max_reset_timeout:g} s",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Complete retry behaviour of one destination."""

    preset: str = DEFAULT_PRESET
    stages: tuple[StageConfig, ...]
    max_retries: int | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    jitter: JitterMode = JitterMode.PROPORTIONAL
    retry_after_cap: float = 270.0

    def __post_init__(self) -> None:
        """Validate the cross-field rules."""
        if not self.stages:
            raise PolicyError("stages", "at least one stage is required")
        if self.max_retries is not None and self.max_retries < 1:
            raise PolicyError("max_retries", "must be at least 1 (or 0/None for unlimited)")
        if self.retry_after_cap < 0 or not math.isfinite(self.retry_after_cap):
            raise PolicyError("retry_after_cap", "must be a finite number >= 0 seconds")

    def position(self, retry_number: int) -> tuple[StageConfig, int]:
        """Return the stage and the 1-based attempt within it for retry ``retry_number``."""
        remaining = retry_number
        for stage in self.stages:
            if stage.attempts is None or remaining <= stage.attempts:
                return stage, remaining
            remaining -= stage.attempts
        # Past every limited stage: stay in the last one for ever.
        last = self.stages[-1]
        previous = sum(s.attempts or 0 for s in self.stages[:-1])
        return last, retry_number - previous

    def base_delay(self, retry_number: int) -> float:
        """Un-jittered delay for retry ``retry_number`` (1-based)."""
        stage, attempt = self.position(retry_number)
        return stage.delay_for(attempt)

    def to_flat(self) -> dict[str, Any]:
        """Return the policy as flat override values (the options-flow view)."""
        out: dict[str, Any] = {}
        for stage in self.stages:
            prefix = stage.name.value
            if stage.attempts is not None:
                out[f"{prefix}_attempts"] = stage.attempts
            out[f"{prefix}_base_delay"] = stage.base_delay
            out[f"{prefix}_max_delay"] = stage.max_delay
            out[f"{prefix}_multiplier"] = stage.multiplier
        out["max_retries"] = self.max_retries or 0
        out["breaker_enabled"] = self.breaker.enabled
        out["breaker_failure_threshold"] = self.breaker.failure_threshold
        out["breaker_reset_timeout"] = self.breaker.reset_timeout
        out["breaker_success_threshold"] = self.breaker.success_threshold
        out["breaker_max_reset_timeout"] = self.breaker.max_reset_timeout
        out["jitter"] = self.jitter.value
        out["retry_after_cap"] = self.retry_after_cap
        return out

    def recovery_bound(self, request_timeout: float = 0.0) -> float | None:
        """Worst case, in seconds, from the destination being back to the next attempt.

        The request in flight when it comes back may still run into its
        ``request_timeout``; then comes at most the longest wait the policy can
        schedule. ``None`` when the policy gives up (``max_retries``): a
        manual retry is needed then.
        """
        if self.max_retries is not None:
            return None
        longest = max(stage.max_delay for stage in self.stages)
        if self.jitter is JitterMode.PROPORTIONAL:
            longest *= 1 + JITTER_FRACTION
        waits = [longest, self.retry_after_cap]
        if self.breaker.enabled:
            waits.append(self.breaker.max_reset_timeout)
        return request_timeout + max(waits)


# --- override keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OverrideSpec:
    """Type and range of one flat override key, enough for a UI form.

    ``type`` is ``int``, ``float``, ``bool`` or ``str``; ``minimum`` and
    ``maximum`` are inclusive; ``choices`` lists the values of a ``str`` key.
    """

    key: str
    type: type
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    unit: str | None = None


_DAY = 86_400.0


def _stage_specs(stage: RetryStage, *, limited: bool) -> list[OverrideSpec]:
    name = stage.value
    specs = []
    if limited:
        specs.append(
            OverrideSpec(
                key=f"{name}_attempts",
                type=int,
                description=f"Retries in the {name} stage before moving on",
                minimum=1,
                maximum=10_000,
            )
        )
    specs += [
        OverrideSpec(
            key=f"{name}_base_delay",
            type=float,
            description=f"First delay of the {name} stage",
            minimum=0,
            maximum=_DAY,
            unit="s",
        ),
        OverrideSpec(
            key=f"{name}_max_delay",
            type=float,
            description=f"Longest delay of the {name} stage (>= base delay)",
            minimum=0,
            maximum=_DAY,
            unit="s",
        ),
        OverrideSpec(
            key=f"{name}_multiplier",
            type=float,
            description=f"Growth factor between delays of the {name} stage",
            minimum=1,
            maximum=10,
        ),
    ]
    return specs


OVERRIDE_SPECS: tuple[OverrideSpec, ...] = (
    *_stage_specs(RetryStage.RAPID, limited=True),
    *_stage_specs(RetryStage.MODERATE, limited=True),
    *_stage_specs(RetryStage.PERSISTENT, limited=False),
    OverrideSpec(
        key="max_retries",
        type=int,
        description="Give up after this many consecutive retries until a manual retry (0 = never)",
        minimum=0,
        maximum=1_000_000,
    ),
    OverrideSpec(key="breaker_enabled", type=bool, description="Use the circuit breaker"),
    OverrideSpec(
        key="breaker_failure_threshold",
        type=int,
        description="Consecutive transient failures that open the circuit",
        minimum=1,
        maximum=10_000,
    ),
    OverrideSpec(
        key="breaker_reset_timeout",
        type=float,
        description="First open period before a probe is allowed",
        minimum=1,
        maximum=_DAY,
        unit="s",
    ),
    OverrideSpec(
        key="breaker_success_threshold",
        type=int,
        description="Consecutive successful probes that close the circuit",
        minimum=1,
        maximum=100,
    ),
    OverrideSpec(
        key="breaker_max_reset_timeout",
        type=float,
        description="Longest open period after repeated failed probes (>= reset timeout)",
        minimum=1,
        maximum=_DAY,
        unit="s",
    ),
    OverrideSpec(
        key="jitter",
        type=str,
        description="Delay randomisation: proportional (+/-20 %), full (0..delay) or none",
        choices=tuple(m.value for m in JitterMode),
    ),
    OverrideSpec(
        key="retry_after_cap",
        type=float,
        description="Longest wait honoured from a server's Retry-After header",
        minimum=0,
        maximum=_DAY,
        unit="s",
    ),
)

#: Override key -> spec, for lookups.
OVERRIDE_KEYS: Mapping[str, OverrideSpec] = {spec.key: spec for spec in OVERRIDE_SPECS}


# --- presets -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """A named set of flat override values."""

    name: str
    description: str
    values: Mapping[str, Any]


_BASE_VALUES: Mapping[str, Any] = {
    "rapid_attempts": 10,
    "rapid_base_delay": 1.0,
    "rapid_max_delay": 5.0,
    "rapid_multiplier": 1.5,
    "moderate_attempts": 20,
    "moderate_base_delay": 5.0,
    "moderate_max_delay": 30.0,
    "moderate_multiplier": 2.0,
    # Sized for a 5 min recovery bound with the 30 s request timeout (see
    # RetryPolicy.recovery_bound): 225 s + 20 % jitter = 270 s = breaker's
    # longest open period = Retry-After cap.
    "persistent_base_delay": 30.0,
    "persistent_max_delay": 225.0,
    "persistent_multiplier": 2.0,
    "max_retries": 0,
    "breaker_enabled": True,
    "breaker_failure_threshold": 50,
    "breaker_reset_timeout": 240.0,
    "breaker_success_threshold": 3,
    "breaker_max_reset_timeout": 270.0,
    "jitter": JitterMode.PROPORTIONAL.value,
    "retry_after_cap": 270.0,
}


def _preset(name: str, description: str, **changes: Any) -> Preset:
    return Preset(name=name, description=description, values={**_BASE_VALUES, **changes})


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        _preset("infinite", "Never give up; suitable for production (default)"),
        _preset(
            "aggressive",
            "Faster retries, more load on the destination; no circuit breaker",
            rapid_attempts=20,
            moderate_attempts=40,
            rapid_max_delay=3.0,
            moderate_max_delay=15.0,
            breaker_enabled=False,
        ),
        _preset(
            "conservative",
            "Slower retries, less load; back within 10 minutes of the destination",
            rapid_attempts=5,
            moderate_attempts=10,
            # A 10 min recovery bound: 475 s + 20 % = 570 s, plus the 30 s timeout.
            persistent_max_delay=475.0,
            breaker_max_reset_timeout=570.0,
            retry_after_cap=570.0,
        ),
        _preset(
            "limited",
            "10 rapid retries, then stop until a manual retry (data is kept)",
            rapid_attempts=10,
            max_retries=10,
        ),
    )
}


def preset_values(preset: str) -> dict[str, Any]:
    """Return the flat values of ``preset`` (defaults for an options form)."""
    try:
        return dict(PRESETS[preset].values)
    except KeyError:
        raise PolicyError(
            "preset", f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def _coerce(spec: OverrideSpec, value: Any) -> Any:
    """Check the type and range of one override value and normalise it."""
    key = spec.key
    if spec.type is bool:
        if not isinstance(value, bool):
            raise PolicyError(key, f"must be true or false, got {value!r}")
        return value
    if spec.type is str:
        if isinstance(value, StrEnum):
            value = value.value
        if not isinstance(value, str) or (spec.choices and value not in spec.choices):
            raise PolicyError(key, f"must be one of {spec.choices}, got {value!r}")
        return value
    # Numbers: bool is an int subclass but never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(key, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise PolicyError(key, f"must be a finite number, got {value!r}")
    number: int | float
    if spec.type is int:
        # UI number selectors may hand back 10.0 for 10.
        if isinstance(value, float) and not value.is_integer():
            raise PolicyError(key, f"must be a whole number, got {value!r}")
        number = int(value)
    else:
        number = float(value)
    if spec.minimum is not None and number < spec.minimum:
        raise PolicyError(key, f"must be >= {spec.minimum:g}, got {number:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise PolicyError(key, f"must be <= {spec.maximum:g}, got {number:g}")
    return number


def build_policy(
    preset: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None
) -> RetryPolicy:
    """Build a validated policy from a preset name and flat overrides.

    Raises :class:`PolicyError` naming the offending key for an unknown preset,
    an unknown override key, a wrong type, an out-of-range value or an
    inconsistent pair (for example ``rapid_max_delay < rapid_base_delay``).
    ``max_retries`` of 0 or ``None`` means never give up.
    """
    values = preset_values(preset)
    for key, value in (overrides or {}).items():
        if key == "persistent_attempts":
            raise PolicyError(
                key, "the persistent stage is unlimited; use max_retries to give up instead"
            )
        spec = OVERRIDE_KEYS.get(key)
        if spec is None:
            raise PolicyError(key, f"unknown override key {key!r}")
        # None is how a cleared optional form field arrives: never give up.
        values[key] = _coerce(spec, 0 if key == "max_retries" and value is None else value)

    stages = tuple(
        StageConfig(
            name=stage,
            attempts=None if stage is RetryStage.PERSISTENT else values[f"{stage}_attempts"],
            base_delay=values[f"{stage}_base_delay"],
            max_delay=values[f"{stage}_max_delay"],
            multiplier=values[f"{stage}_multiplier"],
        )
        for stage in RetryStage
    )
    breaker = BreakerConfig(
        enabled=values["breaker_enabled"],
        failure_threshold=values["breaker_failure_threshold"],
        reset_timeout=values["breaker_reset_timeout"],
        success_threshold=values["breaker_success_threshold"],
        max_reset_timeout=values["breaker_max_reset_timeout"],
    )
    return RetryPolicy(
        preset=preset,
        stages=stages,
        max_retries=values["max_retries"] or None,
        breaker=breaker,
        jitter=JitterMode(values["jitter"]),
        retry_after_cap=values["retry_after_cap"],
    )


# --- schedule ---------------------------------------------------------------------------


def apply_jitter(delay: float, mode: JitterMode, rng: random.Random) -> float:
    """Randomise ``delay`` according to ``mode``."""
    match mode:
        case JitterMode.PROPORTIONAL:
            return delay * rng.uniform(1 - JITTER_FRACTION, 1 + JITTER_FRACTION)
        case JitterMode.FULL:
            return rng.uniform(0.0, delay)
        case _:
            return delay


class RetrySchedule:
    """Consecutive-failure counter that turns failures into delays.

    Call :meth:`next_delay` after each failed attempt and :meth:`reset` after
    a success (back to the first stage). Not thread-safe; one per destination.
    """

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        """Create a schedule; pass a seeded ``rng`` for deterministic jitter."""
        self._policy = policy
        # Jitter is not security sensitive; a plain PRNG is what we want.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._failures = 0
        self._gave_up = False

    @property
    def policy(self) -> RetryPolicy:
        """The policy driving this schedule."""
        return self._policy

    @property
    def failures(self) -> int:
        """Retries scheduled since the last reset (consecutive failures)."""
        return self._failures

    @property
    def stage(self) -> RetryStage | None:
        """Stage of the most recently scheduled retry; ``None`` after a reset."""
        if self._failures == 0:
            return None
        return self._policy.position(self._failures)[0].name

    @property
    def stage_attempt(self) -> int:
        """1-based attempt within :attr:`stage`; 0 after a reset."""
        if self._failures == 0:
            return 0
        return self._policy.position(self._failures)[1]

    @property
    def gave_up(self) -> bool:
        """Whether ``max_retries`` was exhausted (limited preset)."""
        return self._gave_up

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Record a failure and return the delay before the next attempt.

        ``retry_after`` (seconds, from a 429/503 header) is honoured: the delay
        becomes ``max(backoff, min(retry_after, retry_after_cap))``. This is
        ``min(max(backoff, retry_after), cap)`` whenever the backoff is below
        the cap (always with the presets), but never shortens our own backoff
        because a server sent a header. Returns ``None`` once ``max_retries``
        is exhausted; the schedule then stays given up until :meth:`reset`.
        """
        max_retries = self._policy.max_retries
        if self._gave_up or (max_retries is not None and self._failures >= max_retries):
            self._gave_up = True
            return None
        self._failures += 1
        delay = apply_jitter(
            self._policy.base_delay(self._failures), self._policy.jitter, self._rng
        )
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self._policy.retry_after_cap))
        return delay

    def delay_for(self, err: DeliveryError) -> float | None:
        """Shortcut for :meth:`next_delay` using ``err.retry_after``."""
        return self.next_delay(err.retry_after)

    def reset(self) -> None:
        """Back to the first stage (after a success or a manual retry)."""
        self._failures = 0
        self._gave_up = False
