"""The run's reports: DIR/junit.xml for CI and DIR/report.html for a test engineer.

The HTML file stands alone: each scenario's timeline is an embedded PNG (base64), followed by
its steps and checks with their times, the markers, and the DUT's log lines.
"""

from __future__ import annotations

import base64
import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from hil.plot import timeline_png
from hil.profile import BenchProfile
from hil.runner import ScenarioResult

STATUS_WORD = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP", "xfail": "XFAIL"}
STATUS_COLOR = {"passed": "#2e7d32", "failed": "#c62828", "error": "#c62828", "skipped": "#757575", "xfail": "#ef6c00"}


def write_reports(results: Sequence[ScenarioResult], profile: BenchProfile, out: Path) -> tuple[Path, Path]:
    """Write junit.xml and report.html into ``out`` (made if missing); returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    junit.write_bytes(junit_xml(results, profile))
    report = out / "report.html"
    report.write_text(report_html(results, profile), encoding="utf-8")
    return junit, report


# ---------------------------------------------------------------- junit


def junit_xml(results: Sequence[ScenarioResult], profile: BenchProfile) -> bytes:
    """JUnit XML: one testcase per scenario; an expected failure (known issue) counts as skipped."""
    suite = ET.Element(
        "testsuite",
        name=f"hil.{profile.name}",
        tests=str(len(results)),
        failures=str(sum(r.status == "failed" for r in results)),
        errors=str(sum(r.status == "error" for r in results)),
        skipped=str(sum(r.status in ("skipped", "xfail") for r in results)),
        time=f"{sum(r.duration_s for r in results):.3f}",
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("bench", profile.name), ("kind", profile.kind), ("profile", profile.source),
                        ("dut_config", profile.dut_config.source)):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in results:
        theme, _, name = result.scenario.name.partition(".")
        case = ET.SubElement(suite, "testcase", classname=f"hil.{theme}", name=name, time=f"{result.duration_s:.3f}")
        if result.status == "failed":
            ET.SubElement(case, "failure", message=result.message).text = _transcript(result)
        elif result.status == "error":
            ET.SubElement(case, "error", message=result.message).text = result.detail or _transcript(result)
        elif result.status in ("skipped", "xfail"):
            ET.SubElement(case, "skipped", message=("xfail: " if result.status == "xfail" else "") + result.message)
        ET.SubElement(case, "system-out").text = _transcript(result) + "\n" + "\n".join(result.log_lines)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def _transcript(result: ScenarioResult) -> str:
    """Steps and checks in time order, as plain text."""
    lines: list[tuple[float, str]] = [(t, f"step  {text}") for t, text in result.steps]
    lines += [(t, f"note  {text}") for t, text in result.notes]
    if result.timeline is not None:
        for check in result.timeline.checks:
            mark = "ok  " if check.ok else "FAIL"
            detail = f" — {check.detail}" if check.detail else ""
            lines.append((check.decided, f"{mark}  {check.text}{detail}"))
    return "\n".join(f"{t:7.3f} s  {text}" for t, text in sorted(lines, key=lambda line: line[0]))


# ---------------------------------------------------------------- html


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #212121; max-width: 1500px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 36px; border-top: 1px solid #ddd;
padding-top: 16px; } table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #e0e0e0; padding: 3px 8px; vertical-align: top; text-align: left; }
th { background: #f5f5f5; } .status { font-weight: bold; } .mono { font-family: ui-monospace, monospace;
font-size: 12px; } img { max-width: 100%; border: 1px solid #e0e0e0; } details { margin: 6px 0; }
.ok { color: #2e7d32; } .fail { color: #c62828; } .muted { color: #757575; } .small { font-size: 12px; }
"""


def report_html(results: Sequence[ScenarioResult], profile: BenchProfile) -> str:
    """The whole report as one HTML page."""
    counts = {s: sum(r.status == s for r in results) for s in STATUS_WORD}
    verdict_ok = all(r.ok for r in results)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>HIL report — bench {_e(profile.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>HIL report — bench <code>{_e(profile.name)}</code> "
        f"<span style='color:{'#2e7d32' if verdict_ok else '#c62828'}'>{'PASS' if verdict_ok else 'FAIL'}</span></h1>",
        f"<p class='muted'>{_e(profile.description)}<br>profile {_e(profile.source)} · DUT configuration "
        f"{_e(profile.dut_config.source)} · {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC · "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f" in {sum(r.duration_s for r in results):.1f} s</p>",
        _tolerances(profile),
        _summary(results),
        _how_to_read(),
    ]
    for index, result in enumerate(results):
        parts.append(_section(index, result))
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text))


def _tolerances(profile: BenchProfile) -> str:
    tol = profile.tolerance
    rows = [
        ("latency_s", tol.latency_s, "a DUT output may follow its cause this late"),
        ("pulse_s", tol.pulse_s, "a lock motor pulse may be this much off its configured length"),
        ("meter_s", tol.meter_s, "extra time for a meter fault to be noticed"),
        ("restart_s", tol.restart_s, "the DUT answers again this long after a restart began"),
        ("quiet_s", tol.quiet_s, "how long “nothing else happens” is watched"),
    ]
    body = "".join(f"<tr><td><code>{k}</code></td><td>{v:g} s</td><td>{_e(why)}</td></tr>" for k, v, why in rows)
    body += (f"<tr><td><code>duty_pct</code></td><td>{tol.duty_pct:g} %</td><td>a measured control-pilot duty "
             "may be this many percentage points off</td></tr>")
    return f"<details><summary>Tolerances of this bench</summary><table>{body}</table></details>"


def _summary(results: Sequence[ScenarioResult]) -> str:
    rows = []
    for index, r in enumerate(results):
        color = STATUS_COLOR[r.status]
        rows.append(
            f"<tr><td><a href='#s{index}'>{_e(r.scenario.name)}</a></td>"
            f"<td class='status' style='color:{color}'>{STATUS_WORD[r.status]}</td>"
            f"<td>{r.duration_s:.1f} s</td><td>{_e(r.scenario.title)}"
            + (f"<br><span class='small' style='color:{color}'>{_e(r.message)}</span>" if r.message else "")
            + "</td></tr>"
        )
    return ("<table><tr><th>scenario</th><th>result</th><th>time</th><th>what it shows</th></tr>"
            + "".join(rows) + "</table>")


def _how_to_read() -> str:
    return (
        "<details><summary>How to read the timelines</summary><ul>"
        "<li>One row per line, grouped by EVSE; a raised line is <b>on</b> (LED lit, coil energized, motor line "
        "driven, plug present, aux contact closed, lock switch reporting locked), whatever the wire's polarity. "
        "Black rows are the DUT's outputs, watched; blue rows marked ◂ are driven by the harness (the EV, the "
        "contactor's aux contact, the lock's switch); the green row is the EV's current as the meter sees it.</li>"
        "<li>On a control pilot: “CP state (car) ◂” is the state the car presents on CP (A no car, B connected, C "
        "asks for energy, D with ventilation, E CP shorted, F −12 V), the letters at each change; “CP PWM duty” is "
        "the DUT's PWM duty (100 % = a steady +12 V, no PWM), its value written at each change.</li>"
        "<li>The status LED row is drawn in the colour the LED shows (blinking shows as gaps, pulsing as changing "
        "brightness).</li>"
        "<li>Vertical lines are events: purple reservations (requests and the DUT's reservation updates), teal "
        "tokens, grey plant actions (plug, power), orange injected faults, red a failure.</li>"
        "<li>Shaded boxes are check windows on the row they check: green passed, red (hatched) failed; the dot is "
        "when the expected change was seen. The grey band at the start is the DUT starting up; a hatched band is "
        "the DUT switched off by a restart scenario. An EVSE where no line changed is folded into one row.</li>"
        "</ul></details>"
    )


def _section(index: int, result: ScenarioResult) -> str:
    color = STATUS_COLOR[result.status]
    head = (
        f"<h2 id='s{index}'>{_e(result.scenario.name)} — "
        f"<span style='color:{color}'>{STATUS_WORD[result.status]}</span></h2>"
        f"<p>{_e(result.scenario.title)}</p>"
    )
    if result.message:
        head += f"<p style='color:{color}'><b>{_e(result.message)}</b></p>"
    if result.timeline is None:
        return head
    png = timeline_png(result.timeline, result.scenario.name, STATUS_WORD[result.status], color,
                       subtitle=result.scenario.title)
    data = base64.b64encode(png).decode()
    image = f"<img alt='timeline of {_e(result.scenario.name)}' src='data:image/png;base64,{data}'>"
    return head + image + _transcript_html(result) + _markers_html(result) + _logs_html(result)


def _transcript_html(result: ScenarioResult) -> str:
    assert result.timeline is not None
    rows: list[tuple[float, int, str]] = [
        (t, 0, f"<tr><td>{t:.3f}</td><td class='muted'>step</td><td><b>{_e(text)}</b></td></tr>")
        for t, text in result.steps
    ]
    rows += [(t, 0, f"<tr><td>{t:.3f}</td><td class='muted'>note</td><td><i>{_e(text)}</i></td></tr>")
             for t, text in result.notes]
    for n, check in enumerate(result.timeline.checks):
        cls, word = ("ok", "ok") if check.ok else ("fail", "FAIL")
        detail = f" — {_e(check.detail)}" if check.detail else ""
        window = f" <span class='muted small'>[{check.t_from:.3f} … {check.t_to:.3f} s]</span>"
        rows.append((check.decided, n + 1, f"<tr><td>{check.decided:.3f}</td><td class='{cls}'>{word}</td>"
                                           f"<td>{_e(check.text)}{detail}{window}</td></tr>"))
    rows.sort(key=lambda r: (r[0], r[1]))
    table = "".join(r[2] for r in rows)
    return f"<table><tr><th>t (s)</th><th></th><th>steps and checks</th></tr>{table}</table>"


def _markers_html(result: ScenarioResult) -> str:
    assert result.timeline is not None
    rows = "".join(
        f"<tr><td>{m.t:.3f}</td><td>{_e(m.kind)}</td><td>{_e(m.text)}</td></tr>"
        for m in sorted(result.timeline.markers, key=lambda m: m.t)
    )
    return f"<details><summary>Events ({len(result.timeline.markers)})</summary><table>{rows}</table></details>"


def _logs_html(result: ScenarioResult) -> str:
    text = "\n".join(result.log_lines)
    if result.detail:
        text += "\n\n" + result.detail
    summary = f"DUT and bench log ({len(result.log_lines)} lines)"
    return f"<details><summary>{summary}</summary><pre class='mono'>{_e(text)}</pre></details>"
