"""The automation blueprint, loaded by Home Assistant and run against a real outage."""

from pathlib import Path
import shutil

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import async_mock_service

from tests.common import PREFIX, settle, setup_entry, tick, unload_entry, v1_entry
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server

BLUEPRINT = Path(__file__).parents[1] / "blueprints/automation/ha_ingestor/notify_on_problem.yaml"
PROBLEM = f"binary_sensor.{PREFIX}_problem"
MINUTES = 5


async def test_notifies_once_after_minutes_and_recovery_only_after_a_notice(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A 2-minute problem sends nothing (0 notices, no "recovered"); a 20-minute one sends
    exactly 1 problem notice after 5 minutes and 1 "recovered" notice at the end.
    """
    target = Path(hass.config.path("blueprints/automation/ha_ingestor"))
    await hass.async_add_executor_job(lambda: target.mkdir(parents=True, exist_ok=True))
    await hass.async_add_executor_job(shutil.copy, BLUEPRINT, target)
    calls = async_mock_service(hass, "test", "notify")
    async with FaultProxy(influxdb_v1.port, mode=Mode.RESET) as proxy:
        entry = v1_entry(proxy.url, influx_db)
        await setup_entry(hass, entry)
        assert await async_setup_component(
            hass,
            "automation",
            {
                "automation": {
                    "use_blueprint": {
                        "path": "ha_ingestor/notify_on_problem.yaml",
                        "input": {
                            "problem_sensor": PROBLEM,
                            "health_sensor": f"sensor.{PREFIX}_health",
                            "minutes": MINUTES,
                            "notify_action": [
                                {"action": "test.notify", "data": {"message": "{{ message }}"}}
                            ],
                        },
                    }
                }
            },
        )
        await hass.async_block_till_done()

        async def problem_for(minutes: float) -> list[int]:
            """Notices sent so far, after each 10 s of the problem."""
            proxy.set_mode(Mode.RESET)
            hass.states.async_set("sensor.kept", str(minutes), {"unit_of_measurement": "W"})
            await settle(hass, freezer, lambda: hass.states.get(PROBLEM).state == "on")
            sent: list[int] = []
            for _ in range(int(minutes * 6)):
                await tick(hass, freezer, 10.0)
                sent.append(len(calls))
            proxy.set_mode(Mode.PASS)
            await settle(hass, freezer, lambda: hass.states.get(PROBLEM).state == "off", step=5.0)
            return sent

        await problem_for(2)
        await tick(hass, freezer, 60.0)
        assert calls == []

        sent = await problem_for(20)
        # The notice goes out once 5 minutes of problem have passed, and only once.
        assert sent.index(1) == MINUTES * 6 - 1
        assert sent[-1] == 1
        await tick(hass, freezer, 60.0)
        messages = [call.data["message"].strip() for call in calls]
        assert len(messages) == 2, messages
        assert messages[0].startswith("Delivery problem (waiting)")
        assert messages[1] == "Delivery recovered."
        await unload_entry(hass, entry)
