"""records.py: HA states keep their attributes object, so the line cache applies."""

from homeassistant.core import State
from homeassistant.util.read_only_dict import ReadOnlyDict
import pytest

from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    EventRecord,
    LineProtocolEncoder,
)
from custom_components.ha_ingestor.records import RoutingLineEncoder, to_record


def test_states_sharing_attributes_hit_the_line_cache() -> None:
    attrs = ReadOnlyDict({"unit_of_measurement": "W", "friendly_name": "Power"})
    states = [
        State("sensor.power", str(i), attrs, last_updated_timestamp=1_700_000_000 + i)
        for i in range(3)
    ]
    records = [to_record(s) for s in states]
    assert all(r is not None and r.attributes is attrs for r in records)
    routing = RoutingLineEncoder(EncoderConfig())
    result = routing.encode_many(r for r in records if r is not None)
    plain = LineProtocolEncoder(EncoderConfig()).encode_many(r for r in records if r is not None)
    assert result.lines == plain.lines
    assert result.lines[2][1] == (
        b'W,domain=sensor,entity_id=power friendly_name_str="Power",value=2 1700000002000000000'
    )
    cache = routing._states._lines
    assert list(cache) == ["sensor.power"]
    assert cache["sensor.power"][0] is attrs


def _state(entity_id: str, value: str) -> State:
    return State(entity_id, value, {"unit_of_measurement": "W"}, last_updated_timestamp=1.0)


def _event(event_type: str) -> EventRecord:
    return EventRecord(
        entity_id=f"event.{event_type}",
        state=event_type,
        attributes={"x": 1},
        time_ns=1000,
        last_changed_ns=1000,
        event_type=event_type,
    )


@pytest.mark.parametrize(
    "kinds",
    [
        ["s", "a", "s", "b", "a", "s"],  # starts with a state: states stream through
        ["a", "s", "b", "s", "a"],  # starts with an event: grouped first
        ["s"],
        ["a"],
        [],
    ],
)
def test_routing_groups_by_type_in_order_of_first_appearance(kinds: list[str]) -> None:
    records: list[EventRecord] = []
    for i, kind in enumerate(kinds):
        if kind == "s":
            record = to_record(_state(f"sensor.s{i}", str(i)))
            assert record is not None
            records.append(record)
        else:
            records.append(_event(f"type_{kind}"))
    order: list[str] = []
    for record in records:
        if record.event_type not in order:
            order.append(record.event_type)
    expected = []
    for event_type in order:
        group = [r for r in records if r.event_type == event_type]
        config = EncoderConfig(
            override_measurement=None if event_type == "state_changed" else event_type
        )
        expected.extend(LineProtocolEncoder(config).encode_many(group).lines)
    result = RoutingLineEncoder(EncoderConfig()).encode_many(iter(records))
    assert result.lines == expected
