"""Asset inventory: hosts, roles from behaviour, device identity, who talks to whom.

``interlock inventory CAPTURE...`` (``cli.py``) prints the table, writes JSON, draws the map
(``plot.py``) and compares with an intended inventory (``intended.py``). The inventory itself
is built from the record stream by :class:`InventoryBuilder` (``assets.py``), identities are
decoded from the records' details in ``identity.py`` and MAC addresses come from the frames'
link headers (``macs.py``).
"""

from interlock.inventory.assets import (
    Asset,
    Edge,
    Inventory,
    InventoryBuilder,
    Role,
    RoleThresholds,
    Service,
    build,
)
from interlock.inventory.identity import Identity

__all__ = [
    "Asset",
    "Edge",
    "Identity",
    "Inventory",
    "InventoryBuilder",
    "Role",
    "RoleThresholds",
    "Service",
    "build",
]
