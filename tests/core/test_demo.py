"""The README's demo command runs and shows the decisions it promises."""

from __future__ import annotations

from controller.cli import main


def test_demo_prints_decisions_and_ends_with_no_reserved_leds(capsys: object) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "reserve_now #1 for ALICE on EVSE 1: Accepted" in out
    assert "reserve_now #4 for DAVE on any EVSE (cType2): Occupied" in out
    assert "EVSE 2 reserved LED off (GlobalReservationRequirementDropped)" in out
    assert out.rstrip().endswith("reserved LEDs now: []")
