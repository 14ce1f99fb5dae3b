"""Device/area/label filters: debounced registry rescans that lose no new entity's states."""

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ha_ingestor.const import CONF_EXCLUDE_DEVICES, CONF_INCLUDE_AREAS
from custom_components.ha_ingestor.filters import REBUILD_COOLDOWN, EntityMatcher
from tests.common import drained, setup_entry, unload_entry, v1_entry
from tests.servers import InfluxV1Server


@pytest.fixture
def rescans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count full rescans of the registries (the matcher's filter builds)."""
    calls: list[int] = []
    build = EntityMatcher._build

    def counting(self: EntityMatcher) -> object:
        calls.append(1)
        return build(self)

    monkeypatch.setattr(EntityMatcher, "_build", counting)
    return calls


async def test_a_burst_of_registry_events_costs_one_rescan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    rescans: list[int],
) -> None:
    """An integration adding 200 entities fires 200 registry events: one rescan follows.

    Figures: 0 rescans during the burst, exactly 1 after the cooldown; each new
    entity's first state (200, set right after its registry entry, before the
    rescan) is shipped: 200 rows stored, 0 lost.
    """
    area = ar.async_get(hass).async_create("Lab")
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    dev_reg, ent_reg = dr.async_get(hass), er.async_get(hass)
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_INCLUDE_AREAS: [area.id]})
    await setup_entry(hass, entry)
    before = len(rescans)
    device = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("demo", "rack")}, name="Rack"
    )
    dev_reg.async_update_device(device.id, area_id=area.id)
    for i in range(200):
        ent_reg.async_get_or_create(
            "sensor", "demo", f"probe_{i}", suggested_object_id=f"probe_{i}", device_id=device.id
        )
        ent_reg.async_get_or_create("sensor", "demo", f"elsewhere_{i}")
        hass.states.async_set(f"sensor.probe_{i}", "1", {"unit_of_measurement": "mV"})
        hass.states.async_set(f"sensor.demo_elsewhere_{i}", "1", {"unit_of_measurement": "mV"})
    await hass.async_block_till_done()
    assert len(rescans) == before
    freezer.tick(timedelta(seconds=REBUILD_COOLDOWN + 0.5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(rescans) == before + 1
    await drained(hass, freezer, entry)
    rows = await influxdb_v1.aquery('SELECT count("value") FROM "mV"', influx_db)
    assert rows[0]["count"] == 200
    await unload_entry(hass, entry)


async def test_membership_changes_apply_at_once(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    rescans: list[int],
) -> None:
    """A device moved into the area ships its entities' next states at once; an entity of an
    excluded device stays out; an entity moved out of the area stops at once (rescan now).

    Figures: exactly the rows leaver=1 and moved=2 are stored (moved=1, banned=2 and
    leaver=2 are outside the filter when set); 1 immediate rescan for the leaver.
    """
    area = ar.async_get(hass).async_create("Hall")
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    dev_reg, ent_reg = dr.async_get(hass), er.async_get(hass)
    moved = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("demo", "moved")}, name="Moved"
    )
    banned = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("demo", "banned")}, name="Banned"
    )
    ent_reg.async_get_or_create(
        "sensor", "demo", "moved", suggested_object_id="moved", device_id=moved.id
    )
    ent_reg.async_get_or_create(
        "sensor", "demo", "banned", suggested_object_id="banned", device_id=banned.id
    )
    ent_reg.async_get_or_create("sensor", "demo", "leaver", suggested_object_id="leaver")
    ent_reg.async_update_entity("sensor.leaver", area_id=area.id)
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{CONF_INCLUDE_AREAS: [area.id], CONF_EXCLUDE_DEVICES: [banned.id]},
    )
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.leaver", "1", {"unit_of_measurement": "lx"})
    hass.states.async_set("sensor.moved", "1", {"unit_of_measurement": "lx"})

    dev_reg.async_update_device(moved.id, area_id=area.id)
    dev_reg.async_update_device(banned.id, area_id=area.id)
    hass.states.async_set("sensor.moved", "2", {"unit_of_measurement": "lx"})
    hass.states.async_set("sensor.banned", "2", {"unit_of_measurement": "lx"})
    builds = len(rescans)
    ent_reg.async_update_entity("sensor.leaver", area_id=None)
    assert len(rescans) == builds + 1  # it was a member: rescanned at once
    hass.states.async_set("sensor.leaver", "2", {"unit_of_measurement": "lx"})
    await drained(hass, freezer, entry)
    rows = await influxdb_v1.aquery('SELECT "value", entity_id FROM "lx"', influx_db)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("leaver", 1.0),
        ("moved", 2.0),
    ]
    await unload_entry(hass, entry)
