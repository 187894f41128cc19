"""README.md's HIL section states what ``charger-hil run --bench sim`` prints at the end, and which scenarios show
a known issue; both follow the registered scenarios, so adding a scenario or a known-issue mark fails here until
the README follows.

``tests/hil/test_sim_suite.py`` runs the suite and checks that each scenario ends as its mark says (passed, or
xfail with a known issue), so the counts derived here from the marks are the counts the command prints; a scenario
that needs what the ``sim`` bench lacks (the pilot theme: a control pilot) is skipped there.
"""

from __future__ import annotations

import re

from readme.walkthrough import README

from hil.profile_loader import load_profile
from hil.scenario import load_all

SUMMARY = re.compile(r"ends with a line like `(?P<line>[^`]*)`")
COUNT = re.compile(r"(\d+) (passed|failed|error|skipped|xfail)")
KNOWN_ISSUE = re.compile(r"Known issue shown by the bench \(scenario `(?P<name>[^`]+)`")
NONE_KNOWN = "No scenario is marked with a known issue at present."


def _text() -> str:
    """README.md, its line breaks folded into spaces (a sentence may wrap anywhere)."""
    return " ".join(README.read_text(encoding="utf-8").split())


def test_the_summary_line_counts_the_registered_scenarios() -> None:
    sim = load_profile("sim")
    scenarios = load_all().values()
    runs = [s for s in scenarios if not s.missing(sim)]
    wanted = {"passed": sum(not s.known_issue for s in runs), "skipped": len(scenarios) - len(runs),
              "xfail": sum(bool(s.known_issue) for s in runs)}
    lines = [m["line"] for m in SUMMARY.finditer(_text())]
    assert len(lines) == 1, f"README should state the HIL summary line once ('ends with a line like `...`'): {lines}"
    stated = {kind: int(n) for n, kind in COUNT.findall(lines[0])}
    assert stated == {k: n for k, n in wanted.items() if n}, (
        f"README says charger-hil ends with {lines[0]!r}; with the registered scenarios it prints "
        f"{', '.join(f'{n} {k}' for k, n in wanted.items() if n)} in ... s")
    assert re.fullmatch(r"\d+ passed(, \d+ skipped)?(, \d+ xfail)? in \d+(\.\d)? s", lines[0]), lines[0]


def test_the_known_issue_paragraphs_name_the_marked_scenarios() -> None:
    text = _text()
    marked = {s.name for s in load_all().values() if s.known_issue}
    described = {m["name"] for m in KNOWN_ISSUE.finditer(text)}
    assert described == marked, (f"README describes known issues of {sorted(described)}, the scenarios marked "
                                 f"with one are {sorted(marked)}")
    assert (NONE_KNOWN in text) == (not marked), f"README's {NONE_KNOWN!r} does not match the marks: {sorted(marked)}"
