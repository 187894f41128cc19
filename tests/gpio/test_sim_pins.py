"""The simulated plant itself, through plain gpiozero devices: what the driver tests rely on."""

from __future__ import annotations

import threading

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from drivers.sim.pins import MockConnectedPWMPin, SimContactor, SimLockMechanism, SimPlug


def test_connected_pwm_pin_echoes_coil_onto_mirror(mock_factory: MockFactory) -> None:
    mirror = mock_factory.pin("GPIO27")
    mock_factory.pin("GPIO17", pin_class=MockConnectedPWMPin, input_pin=mirror)
    with (
        DigitalOutputDevice("GPIO17", pin_factory=mock_factory) as coil,
        DigitalInputDevice("GPIO27", pin_factory=mock_factory) as aux,
    ):
        coil.on()
        assert aux.is_active
        coil.off()
        assert not aux.is_active


def test_contactor_aux_follows_after_the_delay_in_another_thread(mock_factory: MockFactory) -> None:
    sim = SimContactor(mock_factory, "GPIO17", "GPIO27", delay_s=0.01, aux_closed_level=True)
    followed = threading.Event()
    threads: list[str] = []
    with (
        DigitalOutputDevice("GPIO17", pin_factory=mock_factory) as coil,
        DigitalInputDevice("GPIO27", pin_factory=mock_factory) as aux,
    ):
        aux.when_activated = lambda: (threads.append(threading.current_thread().name), followed.set())
        coil.on()
        assert not aux.is_active  # not yet: the contacts take their time
        assert followed.wait(2.0)
        assert aux.is_active and sim.contacts_closed
        assert threads and threads[0] != threading.current_thread().name
    sim.close()


def test_contactor_weld_and_stick_open_ignore_the_coil(mock_factory: MockFactory) -> None:
    sim = SimContactor(mock_factory, "GPIO17", "GPIO27", aux_closed_level=True)
    with (
        DigitalOutputDevice("GPIO17", pin_factory=mock_factory) as coil,
        DigitalInputDevice("GPIO27", pin_factory=mock_factory) as aux,
    ):
        coil.on()
        sim.weld()
        coil.off()
        assert aux.is_active and sim.contacts_closed
        sim.stick_open()
        coil.on()
        assert not aux.is_active
        sim.repair()
        assert aux.is_active
    sim.close()


def test_lock_mechanism_travels_and_jams(mock_factory: MockFactory) -> None:
    sim = SimLockMechanism(mock_factory, "GPIO5", "GPIO6", "GPIO22", locked_level=True)
    with (
        DigitalOutputDevice("GPIO5", pin_factory=mock_factory) as lock_line,
        DigitalOutputDevice("GPIO6", pin_factory=mock_factory) as unlock_line,
        DigitalInputDevice("GPIO22", pin_factory=mock_factory) as locked,
    ):
        lock_line.on()
        lock_line.off()
        assert locked.is_active and sim.locked
        sim.jam()
        unlock_line.on()
        unlock_line.off()
        assert locked.is_active
        assert [direction for _, direction in sim.pulses] == [True, False]
        sim.force(False)
        assert not locked.is_active
    sim.close()


def test_driven_input_keeps_its_level_when_a_device_sets_the_pull(mock_factory: MockFactory) -> None:
    plug = SimPlug(mock_factory, "GPIO23", plugged_level=False, plugged=True)  # held low
    with DigitalInputDevice("GPIO23", pull_up=True, pin_factory=mock_factory) as sensor:
        assert sensor.is_active  # the pull-up did not win over the plugged contact
        plug.unplug()
        assert not sensor.is_active


def test_simulator_must_own_its_pins(mock_factory: MockFactory) -> None:
    with DigitalOutputDevice("GPIO17", pin_factory=mock_factory), pytest.raises(ValueError, match="before"):
        SimContactor(mock_factory, "GPIO17", None)
