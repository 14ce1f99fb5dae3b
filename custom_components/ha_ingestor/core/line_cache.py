"""The line cache: the attribute-derived part of an entity's line, rendered once.

Home Assistant hands a new state the *same* attributes object when only the
state changed, and most updates are exactly that. Everything but the
``state`` / ``value`` fields and the timestamp is a function of the entity
id, the attributes and which of the two state fields are present (they
decide attribute key collisions), so :class:`~.line_protocol.LineProtocolEncoder`
renders that part once per attributes object and state shape (through the
same ``line_pieces`` as every other line) and reuses it.
"""

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

# Entities whose attribute-derived line parts are kept (one slot each, oldest evicted).
LINE_CACHE_SIZE: Final = 8192


class Miss:
    """Marker type: the line cache does not cover this record."""


MISS: Final = Miss()


# State shapes (``state`` field present, ``value`` field present): template keys.
VALUE_ONLY: Final = (False, True)
TEXT_ONLY: Final = (True, False)
TEXT_AND_VALUE: Final = (True, True)
# The fields each shape leaves as slots in its template.
SHAPE_SLOTS: Final = {
    VALUE_ONLY: frozenset({"value"}),
    TEXT_ONLY: frozenset({"state"}),
    TEXT_AND_VALUE: frozenset({"state", "value"}),
}


class Template(NamedTuple):
    """Cached part of a line: literal pieces around the ``state`` / ``value`` fields."""

    pieces: tuple[str, ...]
    dropped: int
    truncated: int


type Slot = tuple[Mapping[str, Any], dict[tuple[bool, bool], Template]]


class LineCache(dict[str, Slot]):
    """entity_id -> (attributes object, {state shape: template}), bounded.

    Holding the attributes object keeps its id() from being reused by another object.
    """

    def admit(self, entity_id: str, attributes: Mapping[str, Any]) -> Slot:
        """Start an empty slot for ``entity_id``'s new attributes object."""
        if len(self) >= LINE_CACHE_SIZE:
            del self[next(iter(self))]  # oldest entity first
        slot: Slot = (attributes, {})
        self[entity_id] = slot
        return slot


def immutable_values(attributes: Mapping[str, Any]) -> bool:
    """Whether every key is a string and every value an immutable scalar.

    Only then does the identity of the attributes object pin its content: a
    list value could be changed in place while the mapping stays the same.
    """
    for key, value in attributes.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (str, int, float))):
            return False
    return True
