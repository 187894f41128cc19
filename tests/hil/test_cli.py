"""``charger-hil``: list, a bad bench, and one scenario run end to end with its reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.cli import EXIT_OK, EXIT_USAGE, main


def test_list_names_every_theme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("reservations.specific", "faults.weld", "restart.reservations_survive", "competition."):
        assert name in out


def test_unknown_bench_or_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--bench", "lab", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "no built-in bench 'lab'" in capsys.readouterr().err
    assert main(["run", "--bench", "sim", "--out", str(tmp_path), "no-such-scenario"]) == EXIT_USAGE
    assert not (tmp_path / "junit.xml").exists()


def test_run_one_scenario_prints_progress_and_writes_both_reports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["run", "--bench", "sim", "--out", str(tmp_path), "reservations.specific"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "[1/1] reservations.specific" in out
    assert "step  Reserve EVSE 1 for TOKEN-A" in out and "ok    EVSE 1 reserved LED on within" in out
    assert "PASS reservations.specific" in out and "1 passed" in out
    case = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == "specific" and case.find("failure") is None
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "reservations.specific" in html and "data:image/png;base64," in html
