"""The range's plants, by id: pure physics models stepped on plant time (see ``base.Plant``)."""

from interlock.range.plants.base import Actuator, Hazard, Plant, SafetyLimit, Sis, SisTrip, TripEvent
from interlock.range.plants.gas_pipeline import GasPipeline
from interlock.range.plants.reactor import Reactor
from interlock.range.plants.refinery import Refinery

PLANTS: dict[str, type[Plant]] = {"gas-pipeline": GasPipeline, "reactor": Reactor, "refinery": Refinery}

__all__ = [
    "PLANTS",
    "Actuator",
    "GasPipeline",
    "Hazard",
    "Plant",
    "Reactor",
    "Refinery",
    "SafetyLimit",
    "Sis",
    "SisTrip",
    "TripEvent",
]
