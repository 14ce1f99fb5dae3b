"""A typical home's state changes, as Home Assistant would report them (deterministic).

Used to state the spool's capacity and to simulate a week-long outage: a mix of
power and energy meters, climate sensors, motion and door sensors, lights and
switches, with the attributes Home Assistant gives them, encoded with the
default line-protocol schema (the built-in integration's).
"""

from collections.abc import Iterator
import random
from typing import Any

from custom_components.ha_ingestor.core.encoder import EventRecord, LineProtocolEncoder

START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC


def _kinds() -> list[tuple[str, dict[str, Any], int]]:
    """(entity id, attributes, share of the changes) per entity."""
    kinds: list[tuple[str, dict[str, Any], int]] = []
    rooms = ["kitchen", "living_room", "bedroom", "bathroom", "office", "hallway", "garage"]
    for n in range(12):
        kinds.append(
            (
                f"sensor.plug_{n}_power",
                {
                    "state_class": "measurement",
                    "unit_of_measurement": "W",
                    "device_class": "power",
                    "friendly_name": f"Plug {n} Power",
                },
                8,
            )
        )
        kinds.append(
            (
                f"sensor.plug_{n}_energy",
                {
                    "state_class": "total_increasing",
                    "unit_of_measurement": "kWh",
                    "device_class": "energy",
                    "friendly_name": f"Plug {n} Energy",
                },
                2,
            )
        )
    for room in rooms:
        for what, unit, device_class in (
            ("temperature", "°C", "temperature"),
            ("humidity", "%", "humidity"),
        ):
            kinds.append(
                (
                    f"sensor.{room}_{what}",
                    {
                        "state_class": "measurement",
                        "unit_of_measurement": unit,
                        "device_class": device_class,
                        "friendly_name": f"{room.replace('_', ' ').title()} {what.title()}",
                    },
                    2,
                )
            )
        kinds.append(
            (
                f"binary_sensor.{room}_motion",
                {"device_class": "motion", "friendly_name": f"{room.title()} Motion"},
                1,
            )
        )
        kinds.append(
            (
                f"light.{room}",
                {
                    "min_color_temp_kelvin": 2202,
                    "max_color_temp_kelvin": 6535,
                    "supported_color_modes": ["color_temp", "xy"],
                    "color_mode": "color_temp",
                    "brightness": 180,
                    "color_temp_kelvin": 2700,
                    "friendly_name": f"{room.title()} Light",
                    "supported_features": 44,
                },
                1,
            )
        )
    return kinds


class TypicalHome:
    """Deterministic state changes at ``rate`` per second from :data:`START_NS`."""

    def __init__(self, rate: float = 50.0, seed: int = 1) -> None:
        """Prepare the entities and the encoder."""
        self.rate = rate
        self._rnd = random.Random(seed)
        kinds = _kinds()
        self._entities = [k for k in kinds for _ in range(k[2])]
        self._encoder = LineProtocolEncoder()
        self._values: dict[str, float] = {}

    def _state(self, entity_id: str, attributes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rnd = self._rnd
        if entity_id.startswith("binary_sensor."):
            return rnd.choice(("on", "off")), attributes
        if entity_id.startswith("light."):
            on = rnd.random() < 0.6
            attrs = dict(attributes)
            attrs["brightness"] = rnd.randrange(1, 256) if on else None
            return ("on" if on else "off"), attrs
        last = self._values.get(entity_id, rnd.uniform(10, 500))
        value = round(abs(last + rnd.gauss(0, 5)), 2)
        self._values[entity_id] = value
        return str(value), attributes

    def records(self, count: int, start: int = 0) -> Iterator[EventRecord]:
        """``count`` records, the ``start``-th change onwards."""
        step = 1e9 / self.rate
        for n in range(start, start + count):
            entity_id, attributes, _ = self._rnd.choice(self._entities)
            state, attrs = self._state(entity_id, attributes)
            time_ns = START_NS + int(n * step)
            yield EventRecord(entity_id, state, attrs, time_ns, time_ns)

    def lines(self, count: int, start: int = 0) -> list[tuple[int, bytes]]:
        """The encoded ``(time_ns, line)`` of ``count`` changes."""
        return self._encoder.encode_many(self.records(count, start)).lines
