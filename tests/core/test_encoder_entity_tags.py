"""The encoder's ``entity_tags`` hook (registry tags): escaping, empty values, precedence, cache."""

from types import MappingProxyType

from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    EventRecord,
    LineProtocolEncoder,
)

T = 1_700_000_000_000_000_000


def record(attributes: MappingProxyType[str, object], state: str = "21.5") -> EventRecord:
    """A state change of ``sensor.temp`` with ``attributes``."""
    return EventRecord("sensor.temp", state, attributes, T, T)


def test_tags_are_escaped_and_empty_values_left_out() -> None:
    """Commas, spaces and equals signs are escaped; an empty value leaves the tag out."""
    tags = {"area": "Living room", "labels": "a,b=c", "device": ""}
    encoder = LineProtocolEncoder(EncoderConfig(entity_tags=lambda _entity: tags))
    line = encoder.encode(record(MappingProxyType({"unit_of_measurement": "W"})))
    assert line == (
        rb"W,area=Living\ room,domain=sensor,entity_id=temp,labels=a\,b\=c value=21.5 "
        + str(T).encode()
    )


def test_precedence_attribute_then_registry_then_static() -> None:
    """A registry tag replaces an attribute tag of the same key; a static tag replaces both."""
    encoder = LineProtocolEncoder(
        EncoderConfig(
            tags={"floor": "static"},
            tags_attributes=frozenset({"area"}),
            entity_tags=lambda _entity: {"area": "registry", "floor": "registry"},
        )
    )
    line = encoder.encode(record(MappingProxyType({"area": "attribute"})))
    assert line is not None
    assert b",area=registry," in line
    assert b",floor=static " in line


def test_forget_drops_the_cached_line() -> None:
    """Cached lines keep their tags until forget(); then the next line has the new ones."""
    current = {"area": "Kitchen"}
    encoder = LineProtocolEncoder(
        EncoderConfig(entity_tags=lambda _entity: current), frozen_mappings=(MappingProxyType,)
    )
    attributes = MappingProxyType({"unit_of_measurement": "W"})
    first = encoder.encode_many([record(attributes, "1")]).lines[0][1]
    current = {"area": "Lounge"}
    cached = encoder.encode_many([record(attributes, "2")]).lines[0][1]
    assert b"area=Kitchen" in first
    assert b"area=Kitchen" in cached  # the cache does not ask the hook again
    encoder.forget(["sensor.temp"])
    fresh = encoder.encode_many([record(attributes, "3")]).lines[0][1]
    assert b"area=Lounge" in fresh
    current = {}
    encoder.forget(None)
    assert b"area" not in encoder.encode_many([record(attributes, "4")]).lines[0][1]
