"""The storm's memory watch: samples once per simulated hour, the warm-up snapshot, and the growth slopes.

Memory is sampled after ``gc.collect()``: tracemalloc's traced bytes (started before the build;
``trace_hours`` stops it early, since it about doubles the run time), RSS and live blocks; the
slopes are least squares from the end of the warm-up on.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path

from hil.storm.site import Site


def rss_mb() -> float | None:
    """Resident set size of this process from /proc (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None for fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class MemoryWatch:
    """Samples the process's memory into the site's report and fits the growth slopes at the end."""

    def __init__(self, site: Site, trace_hours: float | None = None) -> None:
        self.site = site
        self.report = site.report
        self.trace_hours = trace_hours  # stop tracing after this many hours (None: never)
        self.first_snapshot: Path | None = None  # the warm-up snapshot, dumped to a file

    def sample_memory(self) -> None:
        """One sample after a full collection: traced bytes (while tracing), RSS and live blocks."""
        gc.collect()
        sample = {"hour": round(self.site.now() / 3600.0, 3), "blocks": float(sys.getallocatedblocks())}
        if tracemalloc.is_tracing():
            sample["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 1e6, 4)
            self.report.traced_hours = sample["hour"]
            self.report.memory_peak_mb = round(max(self.report.memory_peak_mb,
                                                   tracemalloc.get_traced_memory()[1] / 1e6), 4)
        rss = rss_mb()
        if rss is not None:
            sample["rss_mb"] = round(rss, 2)
            self.report.rss_peak_mb = max(self.report.rss_peak_mb, sample["rss_mb"])
        self.report.memory_samples.append(sample)

    def take_first_snapshot(self) -> None:
        """The warm-up snapshot, kept in a file until the comparison (held in memory it would skew RSS)."""
        with tempfile.NamedTemporaryFile(prefix="storm-", suffix=".tracemalloc", delete=False) as f:
            self.first_snapshot = Path(f.name)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(self.first_snapshot))
        del snapshot
        gc.collect()
        tracemalloc.reset_peak()  # the snapshot's own peak is not the controller's

    def snapshot_growth(self) -> None:
        """Name the lines whose memory grew most since the warm-up snapshot (while still tracing)."""
        path, self.first_snapshot = self.first_snapshot, None
        if path is None:
            return
        try:
            if tracemalloc.is_tracing():
                mine = [tracemalloc.Filter(False, tracemalloc.__file__)]  # the loaded snapshot itself
                first = tracemalloc.Snapshot.load(str(path)).filter_traces(mine)
                stats = tracemalloc.take_snapshot().filter_traces(mine).compare_to(first, "lineno")
                self.report.memory_growth_top = [str(stat) for stat in stats[:8]]
        finally:
            path.unlink(missing_ok=True)

    async def sampler(self) -> None:
        """Memory once per sample interval; tracing stops at ``trace_hours`` (it doubles the run time)."""
        settings = self.site.s
        n = 0
        while not await self.site.sleep(settings.sample_interval_s):
            n += 1
            if n == settings.warmup_samples and tracemalloc.is_tracing():
                self.take_first_snapshot()  # before the sample: its own traces are in the baseline
            self.sample_memory()
            if (self.trace_hours is not None and tracemalloc.is_tracing()
                    and self.site.now() >= self.trace_hours * 3600):
                self.snapshot_growth()
                tracemalloc.stop()

    def slope(self, key: str, from_hour: float) -> float | None:
        """Least-squares slope of one sampled quantity over the samples from ``from_hour`` on."""
        pts = [(s["hour"], s[key]) for s in self.report.memory_samples if key in s and s["hour"] >= from_hour - 1e-6]
        slope = least_squares_slope(pts)
        return None if slope is None else round(slope, 5)

    def memory_summary(self) -> None:
        """The last sample, the growth since the warm-up, and the slopes of traced memory, RSS and live blocks."""
        report = self.report
        settings = self.site.s
        self.sample_memory()  # the end, after the last faults were cleared
        self.snapshot_growth()
        warmup_h = settings.warmup_samples * settings.sample_interval_s / 3600.0
        report.memory_slope_mb_per_h = self.slope("traced_mb", warmup_h)
        # tracing inflates RSS and the live blocks: where it stopped early, fit them on the untraced hours
        untraced_from = warmup_h if "traced_mb" in report.memory_samples[-1] else report.traced_hours + 1.0
        report.rss_slope_mb_per_h = self.slope("rss_mb", max(warmup_h, untraced_from))
        report.blocks_slope_per_h = self.slope("blocks", max(warmup_h, untraced_from))
