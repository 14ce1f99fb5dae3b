"""Throttle and deadband in the core: what is written, what is held back, what is released."""

import json

from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    EventRecord,
    JsonEventEncoder,
    LineProtocolEncoder,
)
from custom_components.ha_ingestor.core.shaping import (
    DEADBAND_QUIET,
    Passthrough,
    Shape,
    Shaper,
    ShapeRules,
    ShapingEncoder,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S


def rec(
    entity_id: str, state: str, seconds: float, event_type: str = "state_changed"
) -> EventRecord:
    """A state change at T0 + ``seconds``."""
    time_ns = T0 + round(seconds * S)
    return EventRecord(entity_id, state, {}, time_ns, time_ns, event_type=event_type)


def rules(**levels: dict[str, dict[str, float]]) -> ShapeRules:
    """Rules from option-like mappings (``entities``, ``domains``, ``globs``)."""
    built = ShapeRules.from_mappings(
        levels.get("entities"), levels.get("domains"), levels.get("globs")
    )
    assert built is not None
    return built


def states(records: list[EventRecord]) -> list[str]:
    """The states of ``records``, in order."""
    return [record.state for record in records]


def written(shaper: Shaper, records: list[EventRecord]) -> list[EventRecord]:
    """Shape ``records`` like one flush does."""
    out = list(shaper.shape(records))
    assert all(isinstance(record, EventRecord) for record in out)
    return [record for record in out if isinstance(record, EventRecord)]


def test_precedence_entity_over_glob_over_domain() -> None:
    """The overrides' precedence, setting by setting; 0 turns a throttle off; unshaped: None."""
    shape_rules = rules(
        domains={"sensor": {"throttle": 60, "deadband": 1}},
        globs={"sensor.*_power": {"throttle": 10}, "sensor.fast_*": {"throttle": 5}},
        entities={"sensor.fast_power": {"throttle": 0}, "light.a": {"override_measurement": "x"}},
    )
    assert shape_rules.resolve("sensor.temp") == Shape(60, 1)
    assert shape_rules.resolve("sensor.x_power") == Shape(10, 1)
    # Both globs match: the later one wins, then the entity's own 0.
    assert shape_rules.resolve("sensor.fast_power") == Shape(0, 1)
    assert shape_rules.resolve("light.a") is None
    assert shape_rules.resolve("switch.b") is None
    assert ShapeRules.from_mappings({"light.a": {"override_measurement": "x"}}, None, None) is None


def test_throttle_writes_one_per_window_and_every_run_end() -> None:
    """30 changes, one a second, throttle 10 s: 6 points (1, 10, 11, 20, 21 and the trailing 30).

    Every value that ended a held-back run (10, 20, 30) is written with its own timestamp.
    """
    shaper = Shaper(rules(entities={"sensor.p": {"throttle": 10}}))
    changes = [rec("sensor.p", str(i + 1), i) for i in range(30)]
    out = written(shaper, changes)
    assert states(out) == ["1", "10", "11", "20", "21"]
    assert [r.time_ns for r in out] == [T0, T0 + 9 * S, T0 + 10 * S, T0 + 19 * S, T0 + 20 * S]
    assert shaper.holding == 1
    # The window of the last pass (20 s) ends at 30 s: not before.
    assert shaper.take_due(T0 + 29 * S) == []
    due = shaper.take_due(T0 + 30 * S)
    assert states(list(due)) == ["30"]
    assert type(due[0]) is Passthrough
    assert due[0].time_ns == T0 + 29 * S
    # Points written = changes in - held back + released = 30 - 27 + 3 = 6.
    assert (shaper.held_back, shaper.released) == (27, 3)
    assert shaper.holding == 0


def test_deadband_holds_small_moves_and_releases_the_run_end() -> None:
    """Deadband 0.5: 20.0, 20.1, 20.2, 20.3, 21.0, 21.1, 21.2 -> 20.0, 20.3, 21.0, then 21.2 once quiet."""
    shaper = Shaper(rules(domains={"sensor": {"deadband": 0.5}}))
    values = ["20.0", "20.1", "20.2", "20.3", "21.0", "21.1", "21.2"]
    out = written(shaper, [rec("sensor.t", v, i) for i, v in enumerate(values)])
    assert states(out) == ["20.0", "20.3", "21.0"]
    assert shaper.take_due(T0 + 6 * S + round(DEADBAND_QUIET * S) - 1) == []
    assert states(list(shaper.take_due(T0 + 6 * S + round(DEADBAND_QUIET * S)))) == ["21.2"]
    # 21.2 is now the reference: 21.6 is within the band, 21.8 is not.
    assert states(
        written(shaper, [rec("sensor.t", "21.6", 400), rec("sensor.t", "21.8", 401)])
    ) == [
        "21.6",
        "21.8",
    ]


def test_non_numeric_states_are_never_deadbanded() -> None:
    """A deadband on on/off and text states writes every change; numeric <-> text always passes."""
    shaper = Shaper(rules(globs={"*": {"deadband": 100}}))
    changes = ["on", "off", "on", "5", "6", "unavailable", "7", "heat"]
    out = written(shaper, [rec("switch.s", v, i) for i, v in enumerate(changes)])
    # Only 6 is held (|6 - 5| <= 100) and released just before "unavailable".
    assert states(out) == ["on", "off", "on", "5", "6", "unavailable", "7", "heat"]
    assert (shaper.held_back, shaper.released) == (1, 1)


def test_throttle_applies_to_non_numeric_states() -> None:
    """Throttle 60 s on text states: the first passes, the last of the run is released."""
    shaper = Shaper(rules(entities={"sensor.mode": {"throttle": 60, "deadband": 1}}))
    out = written(shaper, [rec("sensor.mode", v, i) for i, v in enumerate(["a", "b", "c"])])
    assert states(out) == ["a"]
    assert states(list(shaper.take_all())) == ["c"]


def test_other_records_pass_untouched() -> None:
    """Unshaped entities, other event types, pass-through records and the past are written as is."""
    shaper = Shaper(rules(entities={"sensor.p": {"throttle": 10}}))
    heartbeat = Passthrough.of(rec("sensor.p", "hb", 2))
    batch = [
        rec("sensor.p", "1", 5),
        rec("sensor.other", "x", 5.5),
        rec("sensor.p", "e", 6, event_type="call_service"),
        heartbeat,
        rec("sensor.p", "past", 1),  # a backfill replaying an older change
        rec("sensor.p", "2", 7),
    ]
    out = written(shaper, batch)
    assert states(out) == ["1", "x", "e", "hb", "past"]
    assert out[3] is heartbeat
    assert shaper.holding == 1


def test_release_is_the_new_reference_and_window() -> None:
    """A trailing release counts as the window's point: a change 1 s later is held again."""
    shaper = Shaper(rules(entities={"sensor.p": {"throttle": 10}}))
    assert states(written(shaper, [rec("sensor.p", "1", 0), rec("sensor.p", "2", 5)])) == ["1"]
    assert states(list(shaper.take_due(T0 + 10 * S))) == ["2"]
    assert written(shaper, [rec("sensor.p", "3", 11)]) == []
    assert states(written(shaper, [rec("sensor.p", "4", 16)])) == ["3", "4"]


def test_shaping_encoder_counts_held_back_as_skipped() -> None:
    """Encoding through the shaper: 5 changes in, 3 lines out, 2 skipped."""
    shaper = Shaper(rules(entities={"sensor.p": {"throttle": 10}}))
    encoder = ShapingEncoder(LineProtocolEncoder(EncoderConfig()), shaper)
    result = encoder.encode_many([rec("sensor.p", str(i), i * 3) for i in range(5)])
    # 0 s passes; 3, 6 and 9 s are held; 12 s passes, after 9 s: lines 0, 3 and 4.
    assert [line.split(b" ")[1] for _, line in result.lines] == [b"value=0", b"value=3", b"value=4"]
    assert result.skipped == 2


def test_shaping_the_data_api_json() -> None:
    """The data-api's JSON encoder shapes the same way (deadband 1 on 1, 2, 3, 2).

    4 changes in, 3 objects out (2 released just before 3), the last 2 at stop.
    """
    shaper = Shaper(rules(domains={"sensor": {"deadband": 1}}))
    encoder = ShapingEncoder(JsonEventEncoder(), shaper)
    result = encoder.encode_many([rec("sensor.t", v, i) for i, v in enumerate("1232")])
    assert [json.loads(line)["state"] for _, line in result.lines] == ["1", "2", "3"]
    assert json.loads(encoder.encode_many(shaper.take_all()).lines[0][1])["state"] == "2"


def test_malformed_records_go_on_to_be_rejected() -> None:
    """A record the shaper cannot read (no string state, no int time) is not held: the
    encoder quarantines it with its reason and the batch goes on (1 rejected, 1 line).
    """
    shaper = Shaper(rules(entities={"sensor.p": {"throttle": 10}}))
    encoder = ShapingEncoder(LineProtocolEncoder(EncoderConfig()), shaper)
    bad = EventRecord("sensor.p", None, {}, "soon", T0)  # type: ignore[arg-type]
    result = encoder.encode_many([bad, rec("sensor.p", "1", 0)])
    assert [reason for _, reason in result.rejected] == ["time_ns is not an integer"]
    assert len(result.lines) == 1
    assert shaper.holding == 0
