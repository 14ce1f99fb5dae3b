"""Secrets are replaced in text whole, whatever order they are given in."""

from custom_components.ha_ingestor.core.redaction import REDACTED, redact_secrets


def test_a_secret_inside_another_leaves_nothing_of_either() -> None:
    """A password that is part of the token, given first.

    Figures: 0 characters of either secret left; the text around them kept.
    """
    text = "auth failed for token s3cr3t-extra at host"
    redacted = redact_secrets(text, ["s3cr3t", "s3cr3t-extra"])
    assert redacted == f"auth failed for token {REDACTED} at host"
    assert "extra" not in redacted


def test_empty_and_very_short_secrets_are_not_replaced() -> None:
    """None, "" and a 3-character secret leave the text as it is (0 replacements)."""
    assert redact_secrets("abc abcd", [None, "", "abc"]) == "abc abcd"
    assert redact_secrets("abc abcd", ["abcd"]) == f"abc {REDACTED}"
