"""The city pack: a city's reference data, loaded and validated at start-up.

An invalid pack is refused with every error listed (`CityPackError.errors`).
"""

from gridloop.citypack.load import CityPackError, load_city_pack
from gridloop.citypack.model import ComponentInstance, Department, EventClass, Grid
from gridloop.citypack.pack import CityPack

__all__ = [
    "CityPack",
    "CityPackError",
    "ComponentInstance",
    "Department",
    "EventClass",
    "Grid",
    "load_city_pack",
]
