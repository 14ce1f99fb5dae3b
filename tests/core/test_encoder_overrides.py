"""Per entity, domain and glob overrides of the measurement and the ignored attributes.

Resolution follows the built-in integration's ``EntityValues``: the domain's settings,
then each matching glob's (in order), then the entity's own, setting by setting.
"""

from typing import Any

import pytest

from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    LineProtocolEncoder,
    MeasurementStrategy,
    Override,
    Overrides,
)
from tests.core.test_encoder import T, rec
from tests.core.test_encoder_cache import Frozen

OVERRIDES = Overrides(
    entities={
        "sensor.kitchen_power": Override(None, frozenset({"firmware"})),
        "sensor.blank": Override("", None),
    },
    domains={"sensor": Override("sensor_domain", frozenset({"battery"}))},
    globs={
        "sensor.*_power": Override("power", None),
        "sensor.kitchen_*": Override("kitchen", None),
        "Sensor.*": Override("never", None),
    },
)


@pytest.mark.parametrize(
    ("entity_id", "expected"),
    [
        ("light.hall", None),
        ("sensor.outside", Override("sensor_domain", frozenset({"battery"}))),
        ("sensor.garage_power", Override("power", frozenset({"battery"}))),
        # Both globs match: the later one wins; the entity replaces the ignore list.
        ("sensor.kitchen_power", Override("kitchen", frozenset({"firmware"}))),
        # An empty measurement set at a higher level still replaces the lower one.
        ("sensor.blank", Override("", frozenset({"battery"}))),
    ],
)
def test_resolve_precedence(entity_id: str, expected: Override | None) -> None:
    """Entity over glob over domain, each setting on its own; globs are case-sensitive."""
    assert OVERRIDES.resolve(entity_id) == expected


def test_from_mappings() -> None:
    """Stored options (the built-in's inner keys) build overrides; none at all: None."""
    assert Overrides.from_mappings(None, {}, None) is None
    built = Overrides.from_mappings(
        {"sensor.a": {"override_measurement": "m"}},
        {"light": {"ignore_attributes": ["icon"]}},
        {"switch.*": {}},
    )
    assert built == Overrides(
        entities={"sensor.a": Override("m", None)},
        domains={"light": Override(None, frozenset({"icon"}))},
        globs={"switch.*": Override()},
    )


def encoder(**config: Any) -> LineProtocolEncoder:
    return LineProtocolEncoder(
        EncoderConfig(overrides=OVERRIDES, **config), frozen_mappings=(Frozen,)
    )


ATTRS = {"unit_of_measurement": "W", "device_class": "power", "battery": 97, "firmware": "v1"}


def test_lines_follow_the_built_in() -> None:
    """An override's measurement wins and keeps unit and device class as fields.

    Ignored attributes add to the entry's own ignore list.
    """
    lines = encoder(ignore_attributes=frozenset({"device_class"}))
    assert lines.encode(rec("5", ATTRS, entity_id="sensor.kitchen_power")) == (
        b"kitchen,domain=sensor,entity_id=kitchen_power"
        b' battery=97,unit_of_measurement_str="W",value=5 %d' % T
    )
    assert lines.encode(rec("5", ATTRS, entity_id="sensor.outside")) == (
        b"sensor_domain,domain=sensor,entity_id=outside"
        b' firmware_str="v1",unit_of_measurement_str="W",value=5 %d' % T
    )
    # Empty override measurement: the entry's rule (unit of measurement) applies.
    assert lines.encode(rec("5", ATTRS, entity_id="sensor.blank")) == (
        b'W,domain=sensor,entity_id=blank firmware_str="v1",value=5 %d' % T
    )


def test_override_wins_over_the_entry_override_and_strategy() -> None:
    """The entity's measurement beats the entry's override_measurement."""
    lines = encoder(
        measurement_attr=MeasurementStrategy.OVERRIDE, override_measurement="everything"
    )
    assert lines.encode(rec("5", {}, entity_id="sensor.garage_power")).startswith(b"power,")
    assert lines.encode(rec("5", {}, entity_id="light.hall")).startswith(b"everything,")


def test_unaffected_entities_are_byte_identical() -> None:
    """Entities no override names encode exactly as without overrides."""
    plain = LineProtocolEncoder(EncoderConfig(), frozen_mappings=(Frozen,))
    lines = encoder()
    for entity_id in ("light.hall", "switch.pump", "binary_sensor.door"):
        record = rec("on", Frozen(ATTRS), entity_id=entity_id)
        assert lines.encode(record) == plain.encode(record)


def test_resolved_once_per_entity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides are resolved once per entity id, then read from a dict.

    1 000 changes of 2 entities (new attribute objects each time, so every
    change renders a template): 2 resolutions.
    """
    calls: list[str] = []
    real = Overrides.resolve

    def counting(self: Overrides, entity_id: str) -> Override | None:
        calls.append(entity_id)
        return real(self, entity_id)

    monkeypatch.setattr(Overrides, "resolve", counting)
    lines = encoder()
    for i in range(500):
        for entity_id in ("sensor.outside", "light.hall"):
            lines.encode(rec(str(i), Frozen(ATTRS), entity_id=entity_id, time_ns=T + i))
    assert calls == ["sensor.outside", "light.hall"]


def test_no_overrides_resolves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without overrides the encoder never looks any up."""
    monkeypatch.setattr(Overrides, "resolve", lambda *_: pytest.fail("resolved"))
    LineProtocolEncoder(EncoderConfig()).encode(rec("1", ATTRS))


def test_resolution_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event records bring arbitrary entity ids: the cache is cleared at its bound."""
    monkeypatch.setattr("custom_components.ha_ingestor.core.line_protocol.LINE_CACHE_SIZE", 3)
    lines = encoder()
    for i in range(4):
        lines.encode(rec("1", {}, entity_id=f"sensor.s{i}"))
    assert list(lines._resolved) == ["sensor.s3"]
