"""README.md's walkthrough ("Try it: the simulated charger") runs as written against ``charger-controller run --sim``.

The convention the README follows and the timing rule are in ``walkthrough.py``'s docstring. The first test runs
the real README; the others prove that the comparison fails when the README and the controller disagree (on a
tampered copy of the README, against the real controller) and pin down the matching rules without a controller.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from readme.walkthrough import (
    README,
    ReadmeFormatError,
    Step,
    Walkthrough,
    WalkthroughMismatch,
    excerpt_problems,
    json_problems,
    lines_match,
    mask,
    output_problems,
    parse_expected_json,
    parse_walkthrough,
    settled_problems,
    tampered_copy,
)

RESERVE = "charger-controller reserve --id 1 --token ALICE --expires-in 10 --evse 1"
OCCUPIED = "1     Occupied   no       off           blue steady   unlocked  open       -"
STALE_AVAILABLE = "1     Available  no       off           green steady  unlocked  open       -"


def test_the_readme_walkthrough_prints_what_the_readme_shows() -> None:
    transcript = Walkthrough().run()
    commands = [step.argv[0] for step, _ in transcript]
    for needed in ("status", "reserve", "present-token", "plug", "unplug", "fault"):
        assert needed in commands, f"the walkthrough no longer runs {needed}: {commands}"


def test_the_walkthrough_is_parsed_from_the_try_it_section_only() -> None:
    steps = parse_walkthrough()
    assert steps[0].argv == ("run", "--sim")
    assert steps[0].comment.startswith("Ctrl-C stops it")
    json_steps = [s for s in steps if s.is_json]
    assert len(json_steps) == 1 and json_steps[0].comment.startswith("abbreviated")
    assert all(s.command.startswith("charger-controller ") and "#" not in s.command for s in steps)
    last_line = len(README.read_text(encoding="utf-8").split("\n## Install on a Raspberry Pi")[0].splitlines())
    assert all(s.line_no < last_line for s in steps), "a command outside the walkthrough section was parsed"


def test_every_status_in_the_walkthrough_shows_a_state_that_stays() -> None:
    """A ``status`` is run again until it matches, so it must not show a state that is about to change."""
    passing = re.compile(r"\b(moving|locking|stopping|unlocking)\b")
    for step in parse_walkthrough():
        if step.argv[0] == "status":
            shown = [line for line in step.expected if passing.search(line)]
            assert not shown, f"README line {step.line_no}: '$ {step.command}' shows a passing state: {shown}"


# ------------------------------------------------------------------ the comparison can fail


def _tamper(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of README.md with the one line ``old`` replaced by ``new``."""
    def edit(text: str) -> str:
        """Replace the line, which must occur exactly once."""
        assert text.count(old + "\n") == 1, f"README.md no longer has exactly one line {old!r}"
        return text.replace(old + "\n", new + "\n")

    return tampered_copy(README, tmp_path, edit)


def test_a_tampered_action_output_is_reported_with_command_expected_and_actual(tmp_path: Path) -> None:
    readme = _tamper(tmp_path, "reservation 1: Accepted", "reservation 1: Rejected")
    with pytest.raises(WalkthroughMismatch) as failure:
        Walkthrough(readme).run()
    message = str(failure.value)
    assert f"'$ {RESERVE}'" in message
    assert f"{readme}:" in message
    assert "-reservation 1: Rejected" in message and "+reservation 1: Accepted" in message


def test_the_stale_status_after_the_reserved_token_is_reported(tmp_path: Path) -> None:
    """The README's old claim (Available, unlocked right after the token) fails, after the bounded retries."""
    readme = _tamper(tmp_path, OCCUPIED, STALE_AVAILABLE)
    tampered_line = README.read_text(encoding="utf-8").splitlines().index(OCCUPIED) + 1
    step = [s for s in parse_walkthrough(readme) if s.line_no < tampered_line][-1]
    assert step.argv == ("status",) and STALE_AVAILABLE in step.expected
    with pytest.raises(WalkthroughMismatch) as failure:
        Walkthrough(readme, observe_timeouts={step.line_no: 1.0}).run()  # the others keep their generous bound
    message = str(failure.value)
    assert "'$ charger-controller status'" in message
    assert f"-{STALE_AVAILABLE}" in message and f"+{OCCUPIED}" in message


def test_a_command_the_walkthrough_cannot_run_is_refused(tmp_path: Path) -> None:
    readme = _tamper(tmp_path, "$ charger-controller unplug 1", "$ sleep 2 && charger-controller unplug 1")
    with pytest.raises(ReadmeFormatError, match="runs only charger-controller commands"):
        parse_walkthrough(readme)


# ------------------------------------------------------------------ the matching rules


def _step(command: str, *expected: str) -> Step:
    """A step as the parser builds it from ``$ charger-controller command`` and its output lines."""
    argv = tuple(command.split())
    return Step(1, f"charger-controller {command}", argv, "", expected)


def test_a_dots_line_matches_any_run_of_lines_and_a_dots_prefix_any_start() -> None:
    assert lines_match(["a", "...", "d"], ["a", "b", "c", "d"])
    assert lines_match(["a", "...", "b"], ["a", "b"])
    assert not lines_match(["a", "...", "d"], ["a", "b", "c"])
    assert not lines_match(["a", "b"], ["a", "b", "c"])
    assert lines_match(["... INFO x: y"], ["2026-12-06 04:32:57,106 INFO x: y"])
    assert not lines_match(["... INFO x: y"], ["2026-12-06 04:32:57,106 INFO x: z"])


def test_only_timestamps_and_the_port_are_masked() -> None:
    readme = "1   ...    1     any   2026-11-21T18:40:49Z  -"
    actual = "1   ...    1     any   2026-12-06T04:43:00Z  -"
    assert mask(readme) == mask(actual)
    ready = "ready: API on http://127.0.0.1:{} (2 EVSEs)"
    assert mask(ready.format(40123), 40123) == ready.format(8080)
    assert mask("reservation 1: Accepted") != mask("reservation 2: Accepted")
    assert output_problems(_step("status", "x", "", ""), "x\n") == []  # blank lines at the end are the reader's
    assert output_problems(_step("status", "x"), "y\n")


def test_abbreviated_json_is_a_subset_and_unabbreviated_json_is_exact() -> None:
    expected = parse_expected_json(['{"evses": [{"id": 1, ..., "energy_kwh": 0.0031}, ...],', '"reservations": []}'])
    actual = {"evses": [{"id": 1, "lock": "locked", "energy_kwh": 0.52}, {"id": 2}], "reservations": []}
    assert json_problems(expected, actual) == []
    assert json_problems(expected, {**actual, "store": {}}) == ["$.store: not in the README"]
    assert json_problems(expected, {**actual, "reservations": [{"id": 1}]}) == [
        "$.reservations: 1 elements, the README shows 0"]
    assert json_problems(expected, {**actual, "evses": [{"id": 2, "energy_kwh": 0.0}]}) == [
        "$.evses[0].id: expected 1, got 2"]
    assert json_problems({"power_w": 11040.0}, {"power_w": 0.0}) == ["$.power_w: expected 11040.0, got 0.0"]
    with pytest.raises(ReadmeFormatError):
        parse_expected_json(["..."])
    with pytest.raises(ReadmeFormatError, match="last elements"):
        json_problems(parse_expected_json(["[1, ..., 3]"]), [1, 2, 3])


def test_the_daemon_block_is_an_excerpt_in_order_per_stream() -> None:
    streams = {"stdout": ["ready"], "stderr": ["t1 INFO a", "t2 INFO b", "t3 INFO c"]}
    assert excerpt_problems(["... INFO a", "ready", "... INFO c", "..."], streams) == []
    assert excerpt_problems(["... INFO c", "... INFO a"], streams) == ["... INFO a"]


def _evse(**changes: object) -> dict[str, object]:
    """One EVSE of ``GET /status`` at rest, with ``changes``."""
    evse: dict[str, object] = {"id": 1, "phase": "idle", "lock": "unlocked", "contactor": "open", "faults": [],
                               "power_w": 0.0, "reserved": False, "reserved_led": "off"}
    return {**evse, **changes}


@pytest.mark.parametrize(("evse", "problem"), [
    (_evse(), None),
    (_evse(lock="moving"), "lock moving"),
    (_evse(phase="stopping", lock="locked"), "session stopping"),
    (_evse(phase="charging", lock="locked"), "contactor not closed yet"),
    (_evse(phase="charging", lock="locked", contactor="closed"), "the meter shows no power yet"),
    (_evse(phase="charging", lock="locked", contactor="closed", power_w=11040.0), None),
    (_evse(contactor="closed"), "no fault shown yet"),
    (_evse(contactor="closed", faults=["contactor_welded"], lock="locked"), None),
    (_evse(phase="authorized", lock="locked"), "socket not open yet"),
    (_evse(reserved=True), "reserved LED off while reserved is True"),
    (_evse(reserved=True, reserved_led="on", lock="locked"), None),
])
def test_settled_means_what_a_person_sees_after_a_moment(evse: dict[str, object], problem: str | None) -> None:
    problems = settled_problems({"evses": [evse]})
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and re.search(re.escape(problem), problems[0]), problems
