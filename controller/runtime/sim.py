"""The ``--sim`` controls the runtime offers: the simulated plant's, plus the operator reset a cleared weld needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from controller.port.charger import SimFaultKind, SimPlantControls
from controller.runtime.evse import EvseRecord


class SimControls:
    """``--sim`` controls: the plant's, plus the operator reset that clearing a weld needs."""

    def __init__(
        self,
        plant: SimPlantControls,
        evse: Callable[[int], EvseRecord],
        reset_faults: Callable[[int], Awaitable[list[str]]],
    ) -> None:
        """Forward to ``plant`` once ``evse`` knows the id (else UnknownEvse); ``reset_faults`` after a clear."""
        self._plant = plant
        self._evse = evse
        self._reset_faults = reset_faults

    async def plug(self, evse_id: int) -> None:
        """Plug a simulated car into the EVSE."""
        self._evse(evse_id)
        await self._plant.plug(evse_id)

    async def unplug(self, evse_id: int) -> None:
        """Unplug the simulated car from the EVSE."""
        self._evse(evse_id)
        await self._plant.unplug(evse_id)

    async def fault(self, evse_id: int, kind: SimFaultKind) -> None:
        """Inject (or clear) a plant fault; clearing also resets the controller's latched faults."""
        e = self._evse(evse_id)
        await self._plant.fault(evse_id, kind)
        if SimFaultKind(kind) is SimFaultKind.CLEAR:
            await self._reset_faults(e.evse_id)
