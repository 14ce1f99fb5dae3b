"""Registry tags on a real InfluxDB 1.6.7: area, floor, device, manufacturer, model, labels."""

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_REGISTRY_TAGS, REGISTRY_TAG_KINDS
from tests.common import diagnostics, drained, setup_entry, unload_entry, v1_entry
from tests.servers import InfluxV1Server

pytestmark = pytest.mark.servers

C = {"unit_of_measurement": "°C"}
TAGS = ("area", "floor", "device", "manufacturer", "model", "labels", "entity_id")


async def points(server: InfluxV1Server, db: str) -> list[dict[str, Any]]:
    """Every point of the ``°C`` measurement: value and the registry tags (None when absent)."""
    rows = await server.aquery('SELECT * FROM "°C"', db)
    return [{"value": row["value"], **{tag: row.get(tag) or None for tag in TAGS}} for row in rows]


async def test_tags_follow_registry_changes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Each change before and after a registry change carries the tags of its moment.

    Figures: 6 changes, 6 points: Kitchen (floor Ground), then Living room (moved with no
    flush in between: the first change still says Kitchen), then the device renamed, the
    area renamed, the entity renamed (the device tag stays), and a second device without
    manufacturer or model (those tags left out, never empty). A label with a comma is
    escaped, not split.
    """
    other = MockConfigEntry(domain="test")
    other.add_to_hass(hass)
    floor = fr.async_get(hass).async_create("Ground")
    areas = ar.async_get(hass)
    kitchen = areas.async_create("Kitchen", floor_id=floor.floor_id)
    living = areas.async_create("Living room")
    labels = lr.async_get(hass)
    critical = labels.async_create("Critical")
    night = labels.async_create("Night, quiet")
    devices = dr.async_get(hass)
    pump = devices.async_get_or_create(
        config_entry_id=other.entry_id,
        identifiers={("test", "pump")},
        name="Heat pump",
        manufacturer="Acme",
        model="HP-1",
    )
    devices.async_update_device(pump.id, area_id=kitchen.id, labels={night.label_id})
    bare = devices.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("test", "bare")}, name="Bare"
    )
    entities = er.async_get(hass)
    temp = entities.async_get_or_create(
        "sensor",
        "test",
        "temp",
        device_id=pump.id,
        suggested_object_id="temp",
        # HA refuses an area of its own for an entity without a name of its own.
        has_entity_name=True,
        original_name="Temperature",
    )
    entities.async_update_entity(temp.entity_id, labels={critical.label_id})
    entities.async_get_or_create(
        "sensor", "test", "bare", device_id=bare.id, suggested_object_id="bare"
    )

    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_REGISTRY_TAGS: list(REGISTRY_TAG_KINDS)})
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.temp", "20", C)
    freezer.tick(timedelta(milliseconds=10))
    # Moved before any flush ran: the change above still belongs to the kitchen.
    entities.async_update_entity("sensor.temp", area_id=living.id)
    hass.states.async_set("sensor.temp", "21", C)
    freezer.tick(timedelta(milliseconds=10))
    await hass.async_block_till_done()
    devices.async_update_device(pump.id, name_by_user="Pump")
    hass.states.async_set("sensor.temp", "22", C)
    freezer.tick(timedelta(milliseconds=10))
    await hass.async_block_till_done()
    areas.async_update(living.id, name="Lounge")
    hass.states.async_set("sensor.temp", "23", C)
    freezer.tick(timedelta(milliseconds=10))
    await hass.async_block_till_done()
    entities.async_update_entity("sensor.temp", new_entity_id="sensor.lounge_temp")
    await hass.async_block_till_done()
    hass.states.async_set("sensor.lounge_temp", "24", C)
    freezer.tick(timedelta(milliseconds=10))
    hass.states.async_set("sensor.bare", "5", C)
    freezer.tick(timedelta(milliseconds=10))
    await drained(hass, freezer, entry)

    device = {"manufacturer": "Acme", "model": "HP-1", "labels": "Critical,Night, quiet"}
    assert await points(influxdb_v1, influx_db) == [
        {"value": 20.0, "area": "Kitchen", "floor": "Ground", "device": "Heat pump"}
        | device
        | {"entity_id": "temp"},
        {"value": 21.0, "area": "Living room", "floor": None, "device": "Heat pump"}
        | device
        | {"entity_id": "temp"},
        {"value": 22.0, "area": "Living room", "floor": None, "device": "Pump"}
        | device
        | {"entity_id": "temp"},
        {"value": 23.0, "area": "Lounge", "floor": None, "device": "Pump"}
        | device
        | {"entity_id": "temp"},
        {"value": 24.0, "area": "Lounge", "floor": None, "device": "Pump"}
        | device
        | {"entity_id": "lounge_temp"},
        {
            "value": 5.0,
            "area": None,
            "floor": None,
            "device": "Bare",
            "manufacturer": None,
            "model": None,
            "labels": None,
            "entity_id": "bare",
        },
    ]
    await unload_entry(hass, entry)


async def test_only_selected_tags(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Only the chosen kinds are written; an entity outside the registry gets none.

    Figures: 2 changes, 2 points; tag keys: the built-in's (domain, entity_id) plus area;
    a label and icon change (labels not chosen) captures nothing.
    """
    area = ar.async_get(hass).async_create("Cellar")
    er.async_get(hass).async_get_or_create("sensor", "test", "t", suggested_object_id="cellar")
    er.async_get(hass).async_update_entity("sensor.cellar", area_id=area.id)
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_REGISTRY_TAGS: ["area"]})
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.cellar", "7", C)
    hass.states.async_set("sensor.no_registry", "8", C)
    await drained(hass, freezer, entry)
    # Registry changes that leave the chosen tags as they are put nothing in the stream.
    label = lr.async_get(hass).async_create("Unused")
    er.async_get(hass).async_update_entity("sensor.cellar", labels={label.label_id}, icon="mdi:x")
    await hass.async_block_till_done()
    assert (await diagnostics(hass, entry))["buffered"] == 0
    keys = await influxdb_v1.aquery('SHOW TAG KEYS FROM "°C"', influx_db)
    assert sorted(row["tagKey"] for row in keys) == ["area", "domain", "entity_id"]
    rows = await influxdb_v1.aquery('SELECT "value", area, entity_id FROM "°C"', influx_db)
    assert [(row["entity_id"], row["area"]) for row in rows] == [
        ("cellar", "Cellar"),
        ("no_registry", None),
    ]
    await unload_entry(hass, entry)
