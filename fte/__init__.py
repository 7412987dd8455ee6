"""FTE Research: a durable multi-agent research pipeline on Dapr Workflows."""

__version__ = "0.1.0"
