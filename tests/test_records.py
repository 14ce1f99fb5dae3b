"""records.py: HA states keep their attributes object, so the line cache applies."""

from homeassistant.core import State
from homeassistant.util.read_only_dict import ReadOnlyDict

from custom_components.ha_ingestor.core.encoder import EncoderConfig, LineProtocolEncoder
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
