"""The edge agent: durable capture on the shop floor, synced to the cloud."""

__version__ = "0.1.0"
