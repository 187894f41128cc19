"""One timeline picture per scenario: a row per line (step plot), the status LED in its own colours,
check windows, and the reservation, token and fault events as labelled vertical markers.

Uses matplotlib's object API (no pyplot, no global state), so it is safe to call anywhere.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

from hil.timeline import Marker, Timeline, Trace

ROW_ORDER = (
    "reserved_led",
    "status",
    "coil",
    "contactor_aux",
    "lock_motor_lock",
    "lock_motor_unlock",
    "lock_feedback",
    "plug",
    "pilot_state",
    "pilot_duty",
    "meter_current",
)
ROW_LABELS = {
    "reserved_led": "reserved LED",
    "status": "status LED",
    "coil": "contactor coil",
    "contactor_aux": "aux contact ◂",
    "lock_motor_lock": "lock motor: lock",
    "lock_motor_unlock": "lock motor: unlock",
    "lock_feedback": "lock switch ◂",
    "plug": "plug present ◂",
    "pilot_state": "CP state (car) ◂",
    "pilot_duty": "CP PWM duty",
    "meter_current": "EV current",
}
CP_LETTERS = "FEDCBA"  # by rank (hil.profile.CP_RANK)
MARKER_STYLE = {
    "reservation": ("#7b3fa0", "-"),
    "expiry": ("#7b3fa0", "--"),
    "token": ("#00838f", "-"),
    "ocpp": ("#ad1457", "-"),
    "action": ("#616161", ":"),
    "fault": ("#e65100", "-"),
    "fail": ("#c62828", "-"),
}
LINE_COLOR = {"observed": "#1f1f1f", "driven": "#1565c0", "plant": "#2e7d32"}
ROW_H = 0.34  # inches per row
LANE_IN = 0.17  # inches per lane of marker labels above the plot
MARKER_FONT_PT = 7.0
HEIGHT = 0.72  # of a row's band used by a full-scale value


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the picture."""

    evse_id: int
    role: str
    label: str
    trace: Trace | None  # None for the status LED (drawn from its three channels)


def _settled(timeline: Timeline) -> float:
    return next((m.t for m in timeline.markers if m.text == "DUT settled"), 0.0)


def _idle(timeline: Timeline, evse_id: int, since: float) -> bool:
    """True when none of the EVSE's lines changed after ``since``."""
    traces = [tr for tr in timeline.traces.values() if tr.evse_id == evse_id]
    return all(not tr.changes(since) for tr in traces)


def rows_of(timeline: Timeline) -> list[Row]:
    """The rows to draw, EVSE by EVSE, in a fixed order; an EVSE where nothing happened gets one row."""
    evse_ids = sorted({tr.evse_id for tr in timeline.traces.values()})
    settled = _settled(timeline)
    rows = []
    for evse_id in evse_ids:
        if settled and _idle(timeline, evse_id, settled):
            rows.append(Row(evse_id, "idle", f"EVSE {evse_id}  all lines", None))
            continue
        for role in ROW_ORDER:
            if role == "status":
                if timeline.status_keys(evse_id) is not None:
                    rows.append(Row(evse_id, role, f"EVSE {evse_id}  {ROW_LABELS[role]}", None))
                continue
            trace = timeline.traces.get(f"evse{evse_id}.{role}")
            if trace is not None:
                rows.append(Row(evse_id, role, f"EVSE {evse_id}  {ROW_LABELS[role]}", trace))
    return rows


def timeline_png(
    timeline: Timeline,
    title: str,
    verdict: str,
    color: str,
    *,
    subtitle: str = "",
    end: float | None = None,
    dpi: int = 100,
) -> bytes:
    """The scenario's timeline as a PNG image."""
    rows = rows_of(timeline)
    end = end if end is not None else _end_of(timeline)
    n = max(len(rows), 1)
    markers = sorted((m for m in timeline.markers if m.text != "DUT settled" and m.t <= end), key=lambda m: m.t)
    width_in, left, right = 13.5, 0.15, 0.985
    axis_width_in = width_in * (right - left)
    lanes = marker_lanes(markers, end, axis_width_in, MARKER_FONT_PT)
    lane_count = max((lane for lane, _ in lanes), default=-1) + 1
    lanes_in = LANE_IN * lane_count
    top_in, bottom_in = 0.65 + lanes_in, 0.8
    plot_in = ROW_H * n
    fig = Figure(figsize=(width_in, top_in + plot_in + bottom_in), dpi=dpi)
    height = fig.get_figheight()
    ax = fig.add_axes((left, bottom_in / height, right - left, plot_in / height))
    ax.set_xlim(0, end)
    ax.set_ylim(n, 0)
    ax.set_yticks([i + 0.5 for i in range(n)])
    ax.set_yticklabels([r.label for r in rows], fontsize=8)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_color(LINE_COLOR["driven"] if row.trace is not None and row.trace.kind == "driven" else "#1f1f1f")
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("seconds since the scenario started", fontsize=8)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)

    settled = _settled(timeline)
    if settled:
        ax.axvspan(0, settled, color="#e8e8e8", alpha=0.6, zorder=0.5, linewidth=0)
        ax.text(settled / 2, n - 0.1, "DUT start-up", ha="center", va="bottom", fontsize=7, color="#9e9e9e")
    for off, on in _power_cuts(timeline, end):
        ax.axvspan(off, on, facecolor="#eeeeee", hatch="///", edgecolor="#bdbdbd", linewidth=0, zorder=0.5)
        ax.text((off + on) / 2, n - 0.1, "DUT off", ha="center", va="bottom", fontsize=7, color="#757575")
    for i, row in enumerate(rows):
        if i and row.evse_id != rows[i - 1].evse_id:
            ax.axhline(i, color="#9e9e9e", linewidth=1.0)
        elif i % 2 == 0:
            ax.axhspan(i, i + 1, color="#fafafa", zorder=0)
        if row.role == "idle":
            colour = timeline.status_at(row.evse_id, settled)
            shows = f" (status LED {colour})" if colour else ""
            ax.text(settled + 0.02, i + 0.5, f"no line changed after the DUT started{shows}", va="center",
                    fontsize=7.5, color="#757575")
        elif row.role == "status":
            _draw_status(ax, timeline, row.evse_id, i, end)
        elif row.trace is not None:
            _draw_trace(ax, row.trace, i, end)
    _draw_checks(ax, timeline, rows)
    _draw_markers(ax, markers, lanes, LANE_IN / plot_in)

    fig.suptitle(f"{title} — {verdict}", x=0.01, y=0.995, ha="left", va="top", fontsize=11, fontweight="bold",
                 color=color)
    if subtitle:
        fig.text(0.01, 1 - 0.3 / height, subtitle, ha="left", va="top", fontsize=8.5, color="#424242")
    legend = [
        Patch(facecolor="#a5d6a7", alpha=0.6, label="check window (passed)"),
        Patch(facecolor="#ef9a9a", alpha=0.6, label="check window (failed)"),
        *[Patch(facecolor=c, label=k) for k, (c, _) in MARKER_STYLE.items()],
        Patch(facecolor=LINE_COLOR["driven"], label="◂ driven by the harness"),
    ]
    fig.legend(handles=legend, loc="lower left", ncol=len(legend), fontsize=7, frameon=False,
               bbox_to_anchor=(left - 0.01, 0.0))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _power_cuts(timeline: Timeline, end: float) -> list[tuple[float, float]]:
    """(off, on) spans of DUT restarts, from the harness's markers."""
    cuts, off = [], None
    for marker in sorted(timeline.markers, key=lambda m: m.t):
        if marker.text == "DUT power off":
            off = marker.t
        elif marker.text == "DUT up again" and off is not None:
            cuts.append((off, marker.t))
            off = None
    if off is not None:
        cuts.append((off, end))
    return cuts


def _end_of(timeline: Timeline) -> float:
    if timeline.ended is not None:
        return timeline.ended
    last = [tr.times[-1] for tr in timeline.traces.values() if tr.times]
    last += [m.t for m in timeline.markers] + [c.t_to for c in timeline.checks]
    return max([*last, 1.0]) + 0.3


def _draw_trace(ax: Axes, trace: Trace, row: int, end: float) -> None:
    if not trace.times:
        return
    if trace.unit in ("%", "state"):
        _draw_levels(ax, trace, row, end)
        return
    scale = max([abs(v) for v in trace.values] + [1e-9]) if trace.unit else 1.0
    color = _step_line(ax, trace, row, end, scale)
    if trace.unit and scale > 0 and any(trace.values):
        ax.text(end, row + 0.5, f" {scale:g} {trace.unit} ", ha="right", va="center", fontsize=6,
                color=color)


def _step_line(ax: Axes, trace: Trace, row: int, end: float, full: float) -> str:
    """The trace as a filled step line in its row, ``full`` at the row's top; returns the colour it was drawn in."""
    times = [*trace.times, end]
    values = [*trace.values, trace.values[-1]]
    ys = [row + 0.86 - HEIGHT * min(max(v / full, 0.0), 1.0) for v in values]
    color = LINE_COLOR.get(trace.kind, "#1f1f1f")
    ax.step(times, ys, where="post", color=color, linewidth=1.3)
    ax.fill_between(times, ys, row + 0.86, step="post", color=color, alpha=0.12, linewidth=0)
    return color


def _draw_levels(ax: Axes, trace: Trace, row: int, end: float) -> None:
    """A duty (0..100 %) or a CP state (rank 0..5, F..A) on a fixed scale, its value written at each change."""
    color = _step_line(ax, trace, row, end, 100.0 if trace.unit == "%" else 5.0)
    gap = 0.02 * end  # a value that held for less than this is drawn but not written (no overlapping labels)
    for t, value, until in zip(trace.times, trace.values, [*trace.times[1:], math.inf], strict=True):
        if until - t < gap:
            continue
        if trace.unit == "%":
            text = "100 %" if value >= 99.995 else f"{value:.1f} %"
        else:
            text = CP_LETTERS[min(max(round(value), 0), 5)]
        ax.text(t + 0.02, row + 0.5, text, fontsize=6, va="center", color=color, clip_on=True)


def _draw_status(ax: Axes, timeline: Timeline, evse_id: int, row: int, end: float) -> None:
    spans = timeline.rgb_spans(evse_id, end)
    ax.add_patch(Rectangle((0, row + 0.2), end, 0.6, facecolor="none", edgecolor="#bdbdbd", linewidth=0.5))
    for start, stop, rgb in spans:
        peak = max(rgb)
        if peak < 0.05:
            continue
        hue = tuple(c / peak for c in rgb)  # a dimmed (pulsing) LED keeps its hue and fades, as the eye sees it
        ax.add_patch(Rectangle((start, row + 0.2), stop - start, 0.6, facecolor=hue, alpha=0.25 + 0.75 * peak,
                               edgecolor="none", zorder=2))
    last_name = None
    for t, name in timeline.status_changes(evse_id, until=end):
        if name != last_name and name != "off":
            ax.text(t + 0.02, row + 0.5, name, fontsize=6, va="center", color="white" if name != "amber" else "black",
                    clip_on=True)
        last_name = name


def _draw_checks(ax: Axes, timeline: Timeline, rows: list[Row]) -> None:
    index = {}
    for i, row in enumerate(rows):
        if row.role == "idle":
            for key, trace in timeline.traces.items():
                if trace.evse_id == row.evse_id:
                    index[key] = i
        elif row.role == "status":
            for channel in ("red", "green", "blue"):
                index[f"evse{row.evse_id}.status_{channel}"] = i
        elif row.trace is not None:
            index[row.trace.key] = i
    for check in timeline.checks:
        lanes = sorted({index[k] for k in check.keys if k in index})
        for lane in lanes:
            width = max(check.t_to - check.t_from, 0.02)
            color = "#a5d6a7" if check.ok else "#ef9a9a"
            if check.ok:  # behind the lines
                ax.add_patch(Rectangle((check.t_from, lane + 0.05), width, 0.9, facecolor=color, alpha=0.35,
                                       edgecolor="#2e7d32", linewidth=0.7, zorder=1))
            else:  # on top of everything, so it shows even over the status LED's colours
                ax.add_patch(Rectangle((check.t_from, lane + 0.02), width, 0.96, facecolor=color, alpha=0.45,
                                       edgecolor="#c62828", linewidth=1.6, hatch="xx", zorder=3.5))
            if check.seen is not None and not math.isnan(check.seen):
                ax.plot([check.seen], [lane + 0.5], marker="o", markersize=3.5,
                        color="#1b5e20" if check.ok else "#b71c1c", zorder=4)


def marker_lanes(
    markers: list[Marker], end: float, axis_width_in: float, font_pt: float
) -> list[tuple[int, bool]]:
    """A lane (row above the plot) for each marker's label so that no two labels overlap, and whether the label
    ends at its marker (near the right edge) instead of starting there."""
    seconds_per_pt = end / (axis_width_in * 72)
    lanes: list[list[tuple[float, float]]] = []
    out = []
    for marker in markers:
        width = (len(marker.text) * font_pt * 0.56 + 6) * seconds_per_pt
        leftward = marker.t + width > end
        span = (marker.t - width, marker.t) if leftward else (marker.t, marker.t + width)
        for index, taken in enumerate(lanes):
            if all(span[1] < a or span[0] > b for a, b in taken):
                taken.append(span)
                out.append((index, leftward))
                break
        else:
            lanes.append([span])
            out.append((len(lanes) - 1, leftward))
    return out


def _draw_markers(ax: Axes, markers: list[Marker], lanes: list[tuple[int, bool]], lane_h: float) -> None:
    """Vertical lines through every row, labels in their lanes above the plot, a thin leader to each."""
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    for marker, (lane, leftward) in zip(markers, lanes, strict=True):
        color, style = MARKER_STYLE.get(marker.kind, ("#616161", ":"))
        width = 1.8 if marker.kind == "fail" else 0.9
        ax.axvline(marker.t, color=color, linestyle=style, linewidth=width, zorder=3)
        y = 1.0 + (lane + 0.25) * lane_h
        ax.plot([marker.t, marker.t], [1.0, y], color=color, linewidth=0.5, transform=transform, clip_on=False)
        text = marker.text + " " if leftward else " " + marker.text
        ax.text(marker.t, y, text, ha="right" if leftward else "left", va="bottom", fontsize=MARKER_FONT_PT,
                color=color, transform=transform, clip_on=False,
                fontweight="bold" if marker.kind == "fail" else "normal")
