"""README.md's walkthrough ("Try it: the simulated charger") as an executable script.

The convention, which README.md's walkthrough follows and this module reads:

* Only fenced blocks of the section whose heading is ``## Try it: the simulated charger`` count. In such a
  block a line ``$ charger-controller ...`` is a command; the lines after it, up to the next ``$`` line or the
  end of the block, are its expected output (what the terminal shows: stdout and stderr). A block without a
  ``$`` line is prose for humans and is not run; any other ``$`` command is an error, so the README cannot
  show a step the test does not run.
* ``# ...`` after a command is a comment for the reader (``# abbreviated``, ``# Ctrl-C stops it``); it is
  stripped (``shlex`` rules).
* The first command is ``charger-controller run ...`` (terminal 1); it is started with a fresh
  ``--state-dir`` and ``--api 127.0.0.1:<free port>`` appended, and its expected lines are an excerpt of what
  it logs: each must occur in its output, in order within the stream it was written to (the log lines go to
  stderr, the ready line to stdout, so their interleaving is not checked). Every later command is a client
  command of terminal 2 and runs with ``--api 127.0.0.1:<port>`` appended.
* In expected output a line that is exactly ``...`` matches any run of lines (also none); a line that begins
  with ``... `` matches any line that ends with the rest (a log line's timestamp). Trailing blanks on a line
  and blank lines at the end of an output are ignored.
* What varies from run to run is masked on both sides, and nothing else: RFC 3339 timestamps, the test's API
  port (shown as the default ``127.0.0.1:8080``), and in JSON the ``energy_kwh`` figures (any number matches;
  the meter's energy grows while the car charges). Reservation ids are chosen by the commands and the state
  dir is fresh, so ids are compared as they are.
* The output of a ``--json`` command is compared as JSON, not as text: the expected block, where ``...``
  stands for left-out members of an object or left-out trailing elements of an array (``# abbreviated``),
  must be a subset of the actual document; an object or array without ``...`` must match in full.

Timing: a person reads the screen between two commands, so before each command the harness waits (polling
``GET /status``, bounded by ``SETTLE_TIMEOUT_S``) until the controller is settled in the sense of
``settled_problems``: no lock motor running, no session half-way (locking, stopping, unlocking), the
contactor where the session wants it (a closed one only while charging or with a fault shown), a charging
EVSE's meter already showing the power, reserved LEDs following the reservations. ``status`` only reads, so
when its output differs from the README it is run again once the controller is settled again, until it
matches or ``OBSERVE_TIMEOUT_S`` runs out, as a person runs ``status`` again after a moment; that is how the
walkthrough waits for what ``/status`` cannot announce yet (a fault held for ``fault_hold_s`` after it
cleared, a plug still inside its debounce time, the start-up unlock that begins just after the ready line).
Every other command runs exactly once. Each ``status`` in the README shows a state that stays until the next
command (never a lock ``moving``; the tests check that), so a retry cannot match a state that is about to
change, and the README shows such a ``status`` before every command that depends on a slow change (``unplug``
after the stop). The README says in words where a person has to wait.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cli.cli_helpers import environment
from security.daemon import REPO, Daemon, free_port

README = REPO / "README.md"
SECTION = "## Try it: the simulated charger"
PROGRAM = "charger-controller"
DEFAULT_API = "127.0.0.1:8080"  # what the README shows; the test's own port is masked to it
READ_ONLY = frozenset({"status"})  # commands that only look: run again until they show what the README shows
SETTLE_TIMEOUT_S = 30.0  # generous bounds for a loaded CI machine; never an assertion on speed
OBSERVE_TIMEOUT_S = 30.0
COMMAND_GUARD_S = 60.0
POLL_S = 0.05
WILDCARD = "..."
VARYING_NUMBERS = frozenset({"energy_kwh"})
TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
TIME_MASK = "<time>"
TRANSIENT_PHASES = frozenset({"locking", "stopping", "unlocking"})


class ReadmeFormatError(ValueError):
    """The walkthrough section breaks the convention (see the module docstring)."""


class WalkthroughMismatch(AssertionError):
    """A command printed something else than the README shows; the message names both."""


@dataclass(frozen=True)
class Step:
    """One ``$ charger-controller ...`` line of the walkthrough with the output the README shows after it."""

    line_no: int  # 1-based line of the ``$`` line in the README
    command: str  # as written, without the ``$ `` and the comment
    argv: tuple[str, ...]  # the arguments after ``charger-controller``
    comment: str  # the ``# ...`` text after the command, or ""
    expected: tuple[str, ...]

    @property
    def is_json(self) -> bool:
        """The command prints JSON (``--json``), compared structurally."""
        return "--json" in self.argv


# ------------------------------------------------------------------ parsing


def section_lines(text: str, heading: str = SECTION) -> list[tuple[int, str]]:
    """The (line number, line) pairs of the section under ``heading`` up to the next ``## `` heading."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise ReadmeFormatError(f"README has no line {heading!r}") from None
    found: list[tuple[int, str]] = []
    fenced = False
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            break
        found.append((index + 1, line))
    return found


def parse_walkthrough(readme: Path = README) -> list[Step]:
    """The walkthrough's steps, in README order."""
    steps: list[Step] = []
    block: list[tuple[int, str]] | None = None
    for line_no, line in section_lines(readme.read_text(encoding="utf-8")):
        if line.startswith("```"):
            if block is None:
                block = []
            else:
                steps += _block_steps(block)
                block = None
        elif block is not None:
            block.append((line_no, line))
    if block is not None:
        raise ReadmeFormatError(f"{readme}: a fenced block in {SECTION!r} is not closed")
    if not steps:
        raise ReadmeFormatError(f"{readme}: no '$ {PROGRAM}' command in {SECTION!r}")
    return steps


def _block_steps(block: list[tuple[int, str]]) -> list[Step]:
    """The steps of one fenced block; a block without a ``$`` line is not a terminal transcript."""
    if not any(line.startswith("$ ") for _, line in block):
        return []
    first_no, first = block[0]
    if not first.startswith("$ "):
        raise ReadmeFormatError(f"README line {first_no}: output {first!r} before the first '$' command of its block")
    steps: list[Step] = []
    for line_no, line in block:
        if line.startswith("$ "):
            steps.append(_command(line_no, line[2:]))
        else:
            last = steps[-1]
            steps[-1] = Step(last.line_no, last.command, last.argv, last.comment, (*last.expected, line))
    return steps


def _command(line_no: int, text: str) -> Step:
    """A step for the command ``text`` (after ``$ ``), its comment split off."""
    words = shlex.split(text, comments=True)
    if not words or words[0] != PROGRAM:
        raise ReadmeFormatError(f"README line {line_no}: the walkthrough runs only {PROGRAM} commands, not {text!r}")
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # keep the comment as words, to split it off where shlex would
    tokens = list(lexer)
    at = next((i for i, token in enumerate(tokens) if token.startswith("#")), len(tokens))
    comment = " ".join(tokens[at:]).lstrip("#").strip()
    return Step(line_no, shlex.join(words), tuple(words[1:]), comment, ())


# ------------------------------------------------------------------ comparing


def mask(line: str, port: int | None = None) -> str:
    """``line`` with what varies between runs replaced: timestamps, and the test's port by the README's."""
    if port is not None:
        line = line.replace(f"127.0.0.1:{port}", DEFAULT_API)
    return TIMESTAMP.sub(TIME_MASK, line).rstrip()


def line_matches(expected: str, actual: str) -> bool:
    """One expected line against one actual line (both masked); ``... rest`` matches any line ending in rest."""
    if expected.startswith(WILDCARD + " "):
        return actual.endswith(expected[len(WILDCARD) + 1:])
    return expected == actual


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """All of ``actual`` against ``expected``, where a line ``...`` matches any run of lines (also none)."""
    # match[i][j]: expected[i:] matches actual[j:]
    rows, cols = len(expected), len(actual)
    match = [[False] * (cols + 1) for _ in range(rows + 1)]
    match[rows][cols] = True
    for i in range(rows - 1, -1, -1):
        for j in range(cols, -1, -1):
            if expected[i] == WILDCARD:
                match[i][j] = match[i + 1][j] or (j < cols and match[i][j + 1])
            else:
                match[i][j] = j < cols and line_matches(expected[i], actual[j]) and match[i + 1][j + 1]
    return match[0][0]


def excerpt_problems(expected: list[str], streams: dict[str, list[str]]) -> list[str]:
    """Expected lines (``...`` lines aside) that do not occur, in order, in one of the ``streams``."""
    positions = dict.fromkeys(streams, 0)
    missing: list[str] = []
    for wanted in expected:
        if wanted == WILDCARD:
            continue
        for name, lines in streams.items():
            at = next((k for k in range(positions[name], len(lines)) if line_matches(wanted, lines[k])), None)
            if at is not None:
                positions[name] = at + 1
                break
        else:
            missing.append(wanted)
    return missing


ELLIPSIS_KEY = "\u2026left-out"  # stands for ``...`` in a parsed expected JSON document


def parse_expected_json(lines: list[str]) -> Any:
    """The expected JSON of an abbreviated block: ``...`` becomes a marker member (object) or element (array)."""
    text = "\n".join(lines)
    out: list[str] = []
    stack: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            end = index + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[index:end + 1])
            index = end + 1
            continue
        if text.startswith(WILDCARD, index):
            if not stack:
                raise ReadmeFormatError(f"'...' outside an object or array in expected JSON:\n{text}")
            before = "".join(out).rstrip()
            after = text[index + len(WILDCARD):].lstrip()
            marker = json.dumps(ELLIPSIS_KEY) + (": null" if stack[-1] == "{" else "")
            lead = "" if before.endswith((",", "{", "[")) else ","
            trail = "" if after.startswith((",", "}", "]")) else ","
            out.append(lead + marker + trail)
            index += len(WILDCARD)
            continue
        if char in "{[":
            stack.append(char)
        elif char in "}]":
            stack.pop()
        out.append(char)
        index += 1
    try:
        return json.loads("".join(out))
    except json.JSONDecodeError as exc:
        raise ReadmeFormatError(f"expected JSON does not parse ({exc}):\n{text}") from None


def json_problems(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` (a subset where ``...`` marked left-out parts), by JSON path."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {json.dumps(actual)}"]
        return _object_problems(expected, actual, path)
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array, got {json.dumps(actual)}"]
        return _array_problems(expected, actual, path)
    if isinstance(expected, str) and isinstance(actual, str):
        return [] if mask(expected) == mask(actual) else [f"{path}: expected {expected!r}, got {actual!r}"]
    same = expected == actual and type(expected) is type(actual)
    return [] if same else [f"{path}: expected {json.dumps(expected)}, got {json.dumps(actual)}"]


def _object_problems(expected: dict[str, Any], actual: dict[str, Any], path: str) -> list[str]:
    """``json_problems`` of two objects: the members shown must match; others only where ``...`` stood."""
    open_ended = ELLIPSIS_KEY in expected
    shown = {k: v for k, v in expected.items() if k != ELLIPSIS_KEY}
    problems = [f"{path}.{k}: missing" for k in shown if k not in actual]
    if not open_ended:
        problems += [f"{path}.{k}: not in the README" for k in actual if k not in shown]
    for key, value in shown.items():
        if key not in actual:
            continue
        if key in VARYING_NUMBERS and _is_number(value):
            if not _is_number(actual[key]):
                problems.append(f"{path}.{key}: expected a number, got {json.dumps(actual[key])}")
        else:
            problems += json_problems(value, actual[key], f"{path}.{key}")
    return problems


def _array_problems(expected: list[Any], actual: list[Any], path: str) -> list[str]:
    """``json_problems`` of two arrays: element by element; more elements only where a trailing ``...`` stood."""
    open_ended = bool(expected) and expected[-1] == ELLIPSIS_KEY
    shown = expected[:-1] if open_ended else expected
    if ELLIPSIS_KEY in shown:
        raise ReadmeFormatError(f"{path}: '...' may only stand for the last elements of an array")
    if len(actual) < len(shown) or (not open_ended and len(actual) != len(shown)):
        return [f"{path}: {len(actual)} elements, the README shows {len(shown)}{' or more' if open_ended else ''}"]
    return [p for k, item in enumerate(shown) for p in json_problems(item, actual[k], f"{path}[{k}]")]


def _is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def output_problems(step: Step, output: str, port: int | None = None) -> list[str]:
    """Why ``output`` is not what the README shows for ``step`` (empty: it is)."""
    if step.is_json:
        try:
            actual = json.loads(output)
        except json.JSONDecodeError as exc:
            return [f"the output is not JSON ({exc})"]
        return json_problems(parse_expected_json(list(step.expected)), actual)
    expected = _trim([mask(line) for line in step.expected])
    actual = _trim([mask(line, port) for line in output.splitlines()])
    if lines_match(expected, actual):
        return []
    return list(difflib.unified_diff(expected, actual, "README", "actual", lineterm="", n=1))


def _trim(lines: list[str]) -> list[str]:
    """``lines`` without trailing blank lines (a blank line before the next ``$`` is for the reader)."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def mismatch_message(step: Step, output: str, problems: list[str], readme: Path) -> str:
    """The failure text: where, which command, what the README shows, what it printed, and the differences."""
    return "\n".join([
        f"{readme}:{step.line_no}: '$ {step.command}' printed something else than the README shows",
        "README shows:", *(f"    {line}" for line in step.expected),
        "it printed:", *(f"    {line}" for line in output.splitlines()),
        "differences:", *(f"    {line}" for line in problems),
    ])


# ------------------------------------------------------------------ settling


def settled_problems(status: dict[str, Any]) -> list[str]:
    """What a person would still see moving in ``GET /status``; empty when the controller has settled."""
    problems: list[str] = []
    for evse in status["evses"]:
        name = f"EVSE {evse['id']}"
        phase, contactor, faults = evse["phase"], evse["contactor"], evse["faults"]
        if evse["lock"] == "moving":
            problems.append(f"{name}: lock moving")
        if phase in TRANSIENT_PHASES:
            problems.append(f"{name}: session {phase}")
        if phase == "charging" and contactor != "closed":
            problems.append(f"{name}: charging, contactor not closed yet")
        if phase != "charging" and contactor == "closed" and not faults:
            problems.append(f"{name}: contactor closed outside a session, no fault shown yet")
        if phase == "charging" and contactor == "closed" and not evse["power_w"]:
            problems.append(f"{name}: charging, the meter shows no power yet")
        if phase == "authorized" and not faults and evse["lock"] != "unlocked":
            problems.append(f"{name}: authorized, socket not open yet")
        if (evse["reserved_led"] != "off") != evse["reserved"]:
            problems.append(f"{name}: reserved LED {evse['reserved_led']} while reserved is {evse['reserved']}")
    return problems


def wait_settled(base_url: str, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, Any]:
    """Poll ``GET /status`` until ``settled_problems`` finds nothing; that status, or AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = requests.get(f"{base_url}/status", timeout=10)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        problems = settled_problems(status)
        if not problems:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the controller did not settle within {timeout_s} s: {problems}\n{status}")
        time.sleep(POLL_S)


# ------------------------------------------------------------------ running


def run_client(argv: tuple[str, ...], api: str) -> str:
    """``charger-controller argv... --api api`` as terminal 2 runs it: what it printed (stdout and stderr)."""
    done = subprocess.run([sys.executable, "-m", "controller.cli", *argv, "--api", api], cwd=REPO,
                          env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, timeout=COMMAND_GUARD_S, check=False)
    return done.stdout


@dataclass
class Walkthrough:
    """Runs the steps of a README against a fresh ``run --sim`` and raises WalkthroughMismatch on a difference."""

    readme: Path = README
    observe_timeout_s: float = OBSERVE_TIMEOUT_S
    # a shorter bound for the step at a README line (a self-test that expects that step to fail)
    observe_timeouts: dict[int, float] = field(default_factory=dict)

    def run(self) -> list[tuple[Step, str]]:
        """Every step in order; returns (step, what it printed) for each client command."""
        steps = parse_walkthrough(self.readme)
        first, rest = steps[0], steps[1:]
        if first.argv[:1] != ("run",):
            raise ReadmeFormatError(f"{self.readme}:{first.line_no}: the walkthrough must start with '{PROGRAM} run'")
        transcript: list[tuple[Step, str]] = []
        with self._daemon(first) as (daemon, port):
            for step in rest:
                if step.argv[:1] == ("run",):
                    raise ReadmeFormatError(f"{self.readme}:{step.line_no}: a second '{PROGRAM} run'")
                transcript.append((step, self._step(step, daemon.url, port)))
            self._check_daemon_output(first, daemon)
        return transcript

    @staticmethod
    @contextlib.contextmanager
    def _daemon(step: Step) -> Iterator[tuple[Daemon, int]]:
        """Terminal 1: the README's ``run`` command with a fresh state dir on a free loopback port."""
        with tempfile.TemporaryDirectory(prefix="readme-walkthrough-") as directory:
            port = free_port("127.0.0.1")
            args = [*step.argv, "--state-dir", str(Path(directory) / "state"), "--api", f"127.0.0.1:{port}"]
            daemon = Daemon(args, Path(directory)).start()
            try:
                yield daemon, port
            finally:
                code = daemon.stop()
            assert code == 0, f"{PROGRAM} run exited with {code}:\n{daemon.logs()[-3000:]}"

    def _step(self, step: Step, base_url: str, port: int) -> str:
        """Wait until settled, run the command, compare; a read-only command is run again until it matches."""
        api = f"127.0.0.1:{port}"
        deadline = time.monotonic() + self.observe_timeouts.get(step.line_no, self.observe_timeout_s)
        while True:
            wait_settled(base_url)
            output = run_client(step.argv, api)
            problems = output_problems(step, output, port)
            if not problems:
                return output
            if step.argv[0] not in READ_ONLY or time.monotonic() > deadline:
                raise WalkthroughMismatch(mismatch_message(step, output, problems, self.readme))
            time.sleep(POLL_S)

    def _check_daemon_output(self, step: Step, daemon: Daemon) -> None:
        """Terminal 1's block is an excerpt of what the daemon printed."""
        def lines(path: Path) -> list[str]:
            """The masked lines of one of the daemon's output files."""
            return [mask(line, daemon.port) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]

        streams = {"stdout": lines(daemon.stdout_path), "stderr": lines(daemon.stderr_path)}
        missing = excerpt_problems([mask(line) for line in step.expected], streams)
        if missing:
            raise WalkthroughMismatch(mismatch_message(step, daemon.logs(), [f"not printed: {m}" for m in missing],
                                                       self.readme))


def tampered_copy(readme: Path, directory: Path, edit: Callable[[str], str]) -> Path:
    """A copy of ``readme`` in ``directory`` with ``edit`` applied to its text (for the self-tests)."""
    copy = directory / "README.md"
    copy.write_text(edit(readme.read_text(encoding="utf-8")), encoding="utf-8")
    return copy
