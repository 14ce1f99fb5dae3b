"""Throttle and deadband wiring: rules from the overrides, and the flush job's convert step.

The logic lives in :mod:`.core.shaping`; see there.
"""

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.core import State

from .core.encoder import EventRecord, Rendered
from .core.shaping import Shaper, ShapeRules
from .records import override_levels, record_from_state


def shape_rules_from_options(options: Mapping[str, Any]) -> ShapeRules | None:
    """Throttle/deadband rules from the per entity, domain and glob overrides; None without any."""
    return ShapeRules.from_mappings(*override_levels(options))


def shaped_convert(
    convert: Callable[[Any], EventRecord | Rendered | None], shaper: Shaper
) -> Callable[[Any], EventRecord | Rendered | None]:
    """Wrap the convert step so shaped entities reach the shaper as records.

    The line cache's fast path renders a state straight to bytes, which the
    shaper cannot read; entities without a throttle or deadband keep it.
    """
    applies = shaper.applies

    def convert_shaped(item: Any) -> EventRecord | Rendered | None:
        if type(item) is State and applies(item.entity_id):
            return record_from_state(item)
        return convert(item)

    return convert_shaped
