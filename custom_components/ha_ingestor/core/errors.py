"""Error taxonomy shared by sinks, the retry engine and health."""

from enum import StrEnum


class ErrorCategory(StrEnum):
    """What went wrong, as shown to the user."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    DNS = "dns"
    TLS = "tls"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    BAD_DATA = "bad_data"
    TOO_LARGE = "too_large"
    STORAGE = "storage"
    #: The destination answers but refuses every point sent (a proxy answering 400
    #: to plain HTTP, a receiver whose validation got stricter): a setup fault.
    REJECTED = "rejected"


class ErrorKind(StrEnum):
    """What the pipeline does about it."""

    TRANSIENT = "transient"  # retry with backoff; counts for the breaker
    CONFIG = "config"  # pause, keep data, ask the user (reauth/repair)
    BAD_DATA = "bad_data"  # bisect and quarantine the offending points
    TOO_LARGE = "too_large"  # split the batch
    STORAGE = "storage"  # local disk trouble; never the destination's fault


_KIND_BY_CATEGORY: dict[ErrorCategory, ErrorKind] = {
    ErrorCategory.NETWORK: ErrorKind.TRANSIENT,
    ErrorCategory.TIMEOUT: ErrorKind.TRANSIENT,
    ErrorCategory.DNS: ErrorKind.TRANSIENT,
    ErrorCategory.RATE_LIMITED: ErrorKind.TRANSIENT,
    ErrorCategory.SERVER: ErrorKind.TRANSIENT,
    ErrorCategory.TLS: ErrorKind.CONFIG,
    ErrorCategory.AUTH: ErrorKind.CONFIG,
    ErrorCategory.NOT_FOUND: ErrorKind.CONFIG,
    ErrorCategory.REJECTED: ErrorKind.CONFIG,
    ErrorCategory.BAD_DATA: ErrorKind.BAD_DATA,
    ErrorCategory.TOO_LARGE: ErrorKind.TOO_LARGE,
    ErrorCategory.STORAGE: ErrorKind.STORAGE,
}

TRANSIENT_CATEGORIES = frozenset(
    cat for cat, kind in _KIND_BY_CATEGORY.items() if kind is ErrorKind.TRANSIENT
)


def kind_of(category: ErrorCategory) -> ErrorKind:
    """Return how the pipeline reacts to ``category``."""
    return _KIND_BY_CATEGORY[category]


class DeliveryError(Exception):
    """A write to a destination failed; carries everything needed to react."""

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Create the error; ``message`` must never contain secrets."""
        super().__init__(message)
        self.category = category
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def kind(self) -> ErrorKind:
        """How the pipeline reacts to this error."""
        return kind_of(self.category)

    @property
    def transient(self) -> bool:
        """Whether retrying later may succeed."""
        return self.kind is ErrorKind.TRANSIENT

    def __repr__(self) -> str:
        """Debug representation without secrets."""
        return f"DeliveryError({self.category.value}, {self.message!r}, status={self.status})"
