"""Home Assistant independent core of ha_ingestor.

Nothing in this package imports ``homeassistant``: it is plain asyncio driven
by an injectable clock so the resilience logic can be tested in milliseconds.
"""
