"""The range's plants, by id: pure physics models stepped on plant time (see ``base.Plant``)."""

from interlock.range.plants.base import Actuator, Hazard, Plant, SafetyLimit, Sis, SisTrip, TripEvent
from interlock.range.plants.gas_pipeline import GasPipeline
from interlock.range.plants.reactor import Reactor

# The refinery (issue 4) is not built yet; its id joins this table when it is.
PLANTS: dict[str, type[Plant]] = {"gas-pipeline": GasPipeline, "reactor": Reactor}

__all__ = [
    "PLANTS",
    "Actuator",
    "GasPipeline",
    "Hazard",
    "Plant",
    "Reactor",
    "SafetyLimit",
    "Sis",
    "SisTrip",
    "TripEvent",
]
