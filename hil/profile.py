"""Bench profiles, what they hold: which harness line drives or watches which DUT line, the meter link,
the tolerances, the plant's physics, and the DUT's nominal timings the scenarios check against.

A profile is a TOML file (``hil/benches/*.toml``), read and checked by hil.profile_loader. ``sim`` is
built in: the DUT is the real controller on its embedded simulated configuration, in this process.
A real profile names the harness Pi's pins, the DUT's HTTP API and a copy of the DUT's own
configuration file, from which the bench learns the DUT's nominal timings (lock pulse, debounce,
meter timeouts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.config.loader import ChargerConfig
from controller.runtime import pilot as runtime_pilot
from drivers.gpio.config import RGB
from drivers.interfaces import StatusColor

SIM_DUT_CONFIG = "sim_default"

OBSERVED_ROLES = (
    "reserved_led",
    "status_red",
    "status_green",
    "status_blue",
    "coil",
    "lock_motor_lock",
    "lock_motor_unlock",
)
"""DUT outputs the harness watches."""

DRIVEN_ROLES = ("plug", "contactor_aux", "lock_feedback")
"""DUT inputs the harness drives (it plays the EV, the contactor's aux contact, the lock's switch)."""

ROLE_LABELS = {
    "reserved_led": "reserved LED",
    "status_red": "status LED red",
    "status_green": "status LED green",
    "status_blue": "status LED blue",
    "coil": "contactor coil",
    "lock_motor_lock": "lock motor: lock",
    "lock_motor_unlock": "lock motor: unlock",
    "plug": "plug present",
    "contactor_aux": "contactor aux",
    "lock_feedback": "lock switch",
    "meter_current": "EV current",
    "pilot_state": "CP state (car)",
    "pilot_duty": "CP PWM duty",
}

PILOT_ROLES = ("pilot_state", "pilot_duty")
"""Traces of a control pilot: the state the car presents on CP (A..F, recorded as its rank ``CP_RANK``) and the
duty (%) of the DUT's PWM."""

CP_RANK = {"F": 0, "E": 1, "D": 2, "C": 3, "B": 4, "A": 5}
"""A CP state as a trace value: the number of comparator thresholds its high phase is above (a thermometer code)."""

COMPARATOR_LINES = ("cp_ab", "cp_bc", "cp_cd", "cp_de", "cp_ef")
"""The DUT's comparator inputs the harness drives, highest threshold first (the DUT's ``[evses.pilot.comparator]``
pins), as ``[evses.pilot.lines]`` names them; ``low_ok`` is the low-phase line."""

CAR_SWITCHES = ("ev_present", "s2_c", "s2_d", "cp_short", "diode_bypass")
"""The harness's switches on the analogue car simulator (README "Building a real bench"): the EV's diode and 2.74 kOhm
on CP, S2 with 1.3 kOhm (C) or 270 Ohm (D), CP shorted to PE (E), the diode bypassed (diode fault)."""

PILOT_FRONT_ENDS = ("sim", "comparator", "analog")
DUTY_SOURCES = ("pin", "adc", "status")


class ProfileError(ValueError):
    """The bench profile cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class LineSpec:
    """One wire between the harness and the DUT; ``active_high`` is the level meaning "on" on that wire.

    "On" is: LED lit, coil energized, motor line driven, plug present, aux contact closed, lock locked.
    """

    role: str
    harness: str  # harness pin (gpiozero name) on a real bench; the DUT's own pin on the sim bench
    dut: str  # the DUT pin it is wired to (for the report and the wiring check)
    active_high: bool

    @property
    def observed(self) -> bool:
        """True for a DUT output the harness watches; False for a DUT input the harness drives."""
        return self.role in OBSERVED_ROLES


@dataclass(frozen=True, slots=True)
class DutyAdc:
    """The harness's MCP3008 channel behind an RC low-pass on the DUT's PWM pin: its mean voltage is the duty."""

    channel: int
    spi_device: int = 0  # the harness's SPI0 chip select: 0 = CE0 (GPIO8), 1 = CE1 (GPIO7)
    vref_v: float = 3.3  # the MCP3008's reference
    pwm_high_v: float = 3.3  # the PWM pin's high level (the DUT Pi's 3.3 V rail; measure it)


@dataclass(frozen=True, slots=True)
class PilotWiring:
    """How the harness plays the car on one EVSE's control pilot, and how it measures the DUT's PWM duty.

    ``front_end``: "sim" (the sim bench's simulated CP line and car, drivers.sim.pilot), "comparator" (the harness
    drives the DUT's comparator inputs with the thermometer code of the car's state, and ``low_ok``), "analog" (the
    harness switches the resistors of a car simulator on the real CP line). ``duty``: "pin" (the PWM pin's mock
    history, sim), "adc" (an RC low-pass of the PWM pin into the harness's MCP3008) or "status" (the DUT's /status).
    """

    front_end: str
    duty: str
    pwm_pin: str  # the DUT's PWM pin (sim: the mock pin read; real: the pin the RC filter taps; "": not wired)
    invert: bool = False  # the DUT's invert_output: the pin carries 100 % - duty
    lines: dict[str, LineSpec] = field(default_factory=dict)  # harness outputs playing the car
    adc: DutyAdc | None = None  # duty = "adc"


@dataclass(frozen=True, slots=True)
class EvseBench:
    """The lines of one EVSE, its control pilot's wiring (if it has one) and, on a real bench, the Modbus unit id
    its meter answers as."""

    evse_id: int
    lines: dict[str, LineSpec]
    meter_unit: int | None = None
    pilot: PilotWiring | None = None


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far the DUT may be from its nominal timing before a check fails (all seconds)."""

    latency_s: float = 0.3  # a DUT output may follow its cause this late
    pulse_s: float = 0.08  # a motor pulse may be this much longer or shorter than configured
    meter_s: float = 1.0  # extra time for a meter fault to be noticed (polling phase)
    restart_s: float = 5.0  # the DUT answers its API again this long after a restart began
    quiet_s: float = 0.8  # "nothing else happens" is watched this long
    duty_pct: float = 0.5  # a measured PWM duty may be this many percentage points off (control pilot)


@dataclass(frozen=True, slots=True)
class PlantSettings:
    """The physics the harness plays: contactor and lock mechanics, the EV's charging current."""

    contactor_delay_s: float = 0.03
    lock_travel_s: float = 0.08
    charging_current_a: float = 16.0
    voltage_v: float = 230.0
    car_max_current_a: float = 32.0  # on a control pilot: the most the car draws (it draws min(offered, this))


@dataclass(frozen=True, slots=True)
class MeterLink:
    """Where the harness serves the simulated meters (real bench): RS-485 adapter or Modbus TCP."""

    link: str  # "rtu" or "tcp"
    port: str = ""  # rtu: the harness's serial device, e.g. /dev/ttyUSB0
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    listen: str = "0.0.0.0:502"  # tcp: address the DUT's meter bus connects to


@dataclass(frozen=True, slots=True)
class OcppLink:
    """Where the harness's CSMS (hil.csms) listens for the DUT's OCPP connection: the ``[ocpp]`` table.

    ``listen``, ``path``, ``connect_timeout_s`` and ``version`` are the profile's keys; the rest is derived by the
    loader: on a real bench from the DUT's own ``[ocpp]`` section (which must point at this address, and whose
    version the CSMS speaks), on the sim bench from the settings the sim bench gives its DUT (``SIM_STATION_ID``,
    ``SIM_RECONNECT_S``, and ``version``, which the sim DUT is configured for).
    """

    listen: str  # host:port as written ("127.0.0.1:0": a free port, sim bench only)
    host: str
    port: int
    path: str = "/ocpp"  # the DUT connects to ws://<harness>:<port><path>/<station id>
    connect_timeout_s: float = 30.0  # the DUT is connected to the CSMS this long after the bench opened
    station_id: str = "hil-dut"
    reconnect_max_s: float = 1.0  # the DUT's longest reconnect back-off (its [ocpp] reconnect_max_s)
    version: str = "2.0.1"  # the OCPP version the DUT speaks, and so the harness's CSMS: "2.0.1" or "1.6"


OCPP_VERSIONS = ("2.0.1", "1.6")
SIM_STATION_ID = "hil-dut"
SIM_RECONNECT_S = (0.1, 1.0)
"""The sim bench's DUT reconnects after 0.1 s at first, at most 1 s apart (a real DUT: its [ocpp] settings)."""


@dataclass(frozen=True, slots=True)
class DutSettings:
    """How the harness reaches the DUT and how to restart it (real bench)."""

    config: str = SIM_DUT_CONFIG  # "sim_default" or a path to (a copy of) the DUT's configuration file
    api: str = ""
    access_token_env: str = "CHARGER_API_TOKEN"
    restart_command: tuple[str, ...] = ()
    ready_timeout_s: float = 60.0
    pilots: bool = False  # sim bench: keep the DUT's control pilots, the harness plays the car on each CP


@dataclass(frozen=True, slots=True)
class BenchProfile:
    """A whole bench: what kind, the DUT, tolerances, plant physics, meter link, wiring and the CSMS."""

    name: str
    kind: str  # "sim" or "real"
    source: str
    description: str
    dut: DutSettings
    tolerance: Tolerances
    plant: PlantSettings
    meter: MeterLink | None
    evses: tuple[EvseBench, ...]
    dut_config: ChargerConfig = field(repr=False, compare=False)
    ocpp: OcppLink | None = None  # the harness's CSMS ([ocpp]); None: the bench does not test OCPP

    def evse(self, evse_id: int) -> EvseBench:
        """The bench side of one EVSE (KeyError if the profile has none)."""
        for evse in self.evses:
            if evse.evse_id == evse_id:
                return evse
        raise KeyError(evse_id)

    def timing(self, evse_id: int) -> DutTiming:
        """The DUT's nominal timings for one EVSE, from its configuration."""
        return DutTiming.of(self.dut_config, evse_id)


@dataclass(frozen=True, slots=True)
class DutTiming:
    """Nominal timings of one EVSE of the DUT (seconds), read from the DUT's configuration."""

    plug_debounce_s: float
    lock_pulse_s: float
    lock_retries: int
    lock_backoff_s: float
    lock_confirm_s: float  # how long the DUT waits for the lock switch after a pulse
    contactor_supervision_s: float
    meter_poll_s: float  # how often the DUT reads the meter (a fresh 0 A reading lets the lock open)
    meter_fault_s: float  # worst case from the meter going silent to the DUT seeing a fault
    fault_hold_s: float
    blink_period_s: float
    status_colors: dict[StatusColor, RGB]
    pilot_max_current_a: float | None = None  # the pilot's max_current_a: what the PWM offers with no lower limit
    overcurrent_s: float = 7.0  # how long a car may draw more than offered before it is stopped

    @property
    def lock_fail_s(self) -> float:
        """From a lock command to LOCK_FAILED_* when the bolt never moves: every pulse, confirm and backoff."""
        attempts = self.lock_retries + 1
        return attempts * (self.lock_pulse_s + self.lock_confirm_s) + self.lock_retries * self.lock_backoff_s

    @classmethod
    def of(cls, config: ChargerConfig, evse_id: int) -> DutTiming:
        """Read the timings of EVSE ``evse_id`` from a DUT configuration."""
        evse = config.evse(evse_id)
        lock = evse.lock
        meter_fault_s = meter_poll_s = 0.0
        if evse.meter is not None:
            meter_poll_s = evse.meter.poll_interval_s
            timing = config.bus(evse.meter.bus).timing
            one_read = (timing.retries + 1) * (timing.timeout_s + timing.quiet_s)
            meter_fault_s = min(evse.meter.poll_interval_s + one_read, evse.meter.stale_after_s)
        return cls(
            plug_debounce_s=evse.plug.debounce_s,
            lock_pulse_s=lock.pulse_s if lock else 0.0,
            lock_retries=lock.retries if lock else 0,
            lock_backoff_s=lock.retry_backoff_s if lock else 0.0,
            lock_confirm_s=(4 * lock.feedback_debounce_s + 0.05) if lock and lock.feedback_pin else 0.0,
            contactor_supervision_s=evse.contactor.supervision_timeout_s,
            meter_poll_s=meter_poll_s,
            meter_fault_s=meter_fault_s,
            fault_hold_s=config.controller.fault_hold_s,
            blink_period_s=evse.indicator.blink_on_s + evse.indicator.blink_off_s,
            status_colors=dict(evse.indicator.status_colors),
            pilot_max_current_a=evse.pilot.pilot.max_current_a if evse.pilot is not None else None,
            overcurrent_s=runtime_pilot.OVERCURRENT_S,
        )
