"""gridloop: a city's grid-management closed loop (网格化管理) on Kafka."""

__version__ = "0.1.0"
