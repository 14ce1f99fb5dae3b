"""Actions of ha_ingestor: each acts on its entry; bad targets raise translated errors."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.core.state import ConnectionState
from tests.common import settle, setup_entry, unload_entry, v1_entry
from tests.servers import free_port


@pytest.mark.usefixtures("socket_enabled")
async def test_actions(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """flush, retry_now, reset_circuit_breaker and requeue_dead_letters on a failing entry."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    target = {"config_entry_id": entry.entry_id}

    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    assert runtime.pipeline.buffered == 1
    await hass.services.async_call(DOMAIN, "flush", target, blocking=True)
    assert runtime.pipeline.buffered == 0
    await settle(hass, freezer, lambda: runtime.pipeline.resilience.consecutive_failures >= 1)
    assert runtime.pipeline.resilience.next_retry_at is not None

    await hass.services.async_call(DOMAIN, "retry_now", target, blocking=True)
    assert runtime.pipeline.resilience.next_retry_at is None

    await settle(hass, freezer, lambda: runtime.pipeline.resilience.consecutive_failures >= 2)
    await hass.services.async_call(DOMAIN, "reset_circuit_breaker", target, blocking=True)
    assert runtime.pipeline.resilience.breaker_state.value == "closed"

    response = await hass.services.async_call(
        DOMAIN, "requeue_dead_letters", target, blocking=True, return_response=True
    )
    assert response == {"requeued": 0}
    assert runtime.pipeline.resilience.state is not ConnectionState.ACTIVE
    await unload_entry(hass, entry)


@pytest.mark.parametrize(
    "action", ["flush", "retry_now", "reset_circuit_breaker", "requeue_dead_letters"]
)
@pytest.mark.usefixtures("socket_enabled")
async def test_invalid_targets(hass: HomeAssistant, action: str) -> None:
    """Unknown, foreign and unloaded entries are refused with translated errors."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": "missing"}, blocking=True
        )
    assert err.value.translation_key == "entry_not_found"
    other = MockConfigEntry(domain="other_domain")
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": other.entry_id}, blocking=True
        )
    assert err.value.translation_key == "entry_not_found"
    await unload_entry(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": entry.entry_id}, blocking=True
        )
    assert err.value.translation_key == "entry_not_loaded"


@pytest.mark.usefixtures("socket_enabled")
async def test_backfill_actions(hass: HomeAssistant) -> None:
    """An empty range is refused; cancel reports whether a backfill was running."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    target = {"config_entry_id": entry.entry_id}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "backfill",
            {**target, "start": "2030-01-02 00:00:00", "end": "2030-01-01 00:00:00"},
            blocking=True,
        )
    assert err.value.translation_key == "backfill_invalid_range"
    response = await hass.services.async_call(
        DOMAIN, "cancel_backfill", target, blocking=True, return_response=True
    )
    assert response == {"cancelled": False}
    await unload_entry(hass, entry)
