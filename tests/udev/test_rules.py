"""The udev rules in udev/ checked by a small real parser of the udev rules syntax.

Each logical line (backslash continuations joined, comments and blank lines skipped) must be
comma-separated ``KEY{attr}OP"value"`` pairs with known keys, operators that suit the key
(match keys ``==``/``!=``, assignments ``=``/``+=``/``-=``/``:=``), double-quoted values and an
octal MODE. On top of syntax: every SYMLINK rule sets GROUP and MODE, every GOTO has a later
LABEL, and the parent-matching keys of one rule can match one device. ``udevadm verify`` runs
too when this machine has it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "udev"
RULE_FILES = sorted(RULES_DIR.glob("*.rules"))

MATCH = frozenset({"==", "!="})
ASSIGN = frozenset({"=", "+=", "-=", ":="})
OPERATORS = MATCH | ASSIGN


@dataclass(frozen=True)
class KeySpec:
    """Which operators a key takes and whether it needs (True), allows (None) or forbids an {attr}."""

    operators: frozenset[str]
    attr: bool | None = False


KEYS: dict[str, KeySpec] = {
    **{k: KeySpec(MATCH) for k in ("ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS")},
    **{k: KeySpec(MATCH) for k in ("DRIVER", "DRIVERS", "TAGS", "RESULT")},
    "ATTRS": KeySpec(MATCH, attr=True),
    "CONST": KeySpec(MATCH, attr=True),
    "TEST": KeySpec(MATCH, attr=None),
    "PROGRAM": KeySpec(MATCH | {"="}),
    "ATTR": KeySpec(MATCH | {"=", ":="}, attr=True),
    "SYSCTL": KeySpec(MATCH | {"=", ":="}, attr=True),
    "ENV": KeySpec(MATCH | {"=", "+=", ":="}, attr=True),
    "TAG": KeySpec(OPERATORS),
    "NAME": KeySpec(MATCH | {"=", ":="}),
    "SYMLINK": KeySpec(OPERATORS),
    **{k: KeySpec(frozenset({"=", ":="})) for k in ("OWNER", "GROUP", "MODE")},
    "SECLABEL": KeySpec(frozenset({"=", "+=", ":="}), attr=True),
    "RUN": KeySpec(ASSIGN, attr=None),
    "IMPORT": KeySpec(frozenset({"="}) | MATCH, attr=True),
    "OPTIONS": KeySpec(frozenset({"=", "+="})),
    "LABEL": KeySpec(frozenset({"="})),
    "GOTO": KeySpec(frozenset({"="})),
}
VALUE_FORMATS = {
    "MODE": (re.compile(r"[0-7]{3,4}"), "an octal mode like 0660"),
    "GROUP": (re.compile(r"[a-z_][a-z0-9_-]*"), "a group name"),
    "OWNER": (re.compile(r"[a-z_][a-z0-9_-]*"), "a user name"),
}
USB_DEVICE_ATTRS = frozenset({"idVendor", "idProduct", "serial", "manufacturer", "product"})


class UdevSyntaxError(ValueError):
    """A rules file problem, naming the line and what is wrong."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Pair:
    """One ``KEY{attr}OP"value"``."""

    key: str
    attr: str | None
    op: str
    value: str


@dataclass(frozen=True)
class Rule:
    """One logical line: its first physical line number and its pairs."""

    line: int
    pairs: tuple[Pair, ...]

    def assigned(self, key: str, attr: str | None = None) -> list[str]:
        return [p.value for p in self.pairs if p.key == key and p.attr == attr and p.op in ASSIGN]

    def matched(self, key: str, attr: str | None = None) -> list[str]:
        return [p.value for p in self.pairs if p.key == key and p.attr == attr and p.op in MATCH]


# ------------------------------------------------------------------ parser


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) per rule: continuations joined, comments and blanks dropped."""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if pending is not None:
            if raw.lstrip().startswith("#"):
                raise UdevSyntaxError(number, "a comment cannot continue a backslash-continued line")
            start, text_so_far = pending
            pending = None
        else:
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            start, text_so_far = number, ""
        if raw.endswith("\\"):
            pending = (start, text_so_far + raw[:-1])
        else:
            yield start, text_so_far + raw
    if pending is not None:
        raise UdevSyntaxError(pending[0], "file ends inside a backslash-continued line")


_KEY = re.compile(r"[A-Z_]+")
_ATTR = re.compile(r"\{([^{}\s]+)\}")
_OPERATOR_CHARS = re.compile(r"[=!+\-:<>~]+")
_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_rule(text: str, line: int) -> Rule:
    """Parse one logical line strictly into pairs, or raise naming the first problem."""
    pairs: list[Pair] = []
    pos = 0

    def skip_space() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1

    while True:
        skip_space()
        key_match = _KEY.match(text, pos)
        if key_match is None:
            raise UdevSyntaxError(line, f"expected a KEY at column {pos + 1}, found {text[pos : pos + 12]!r}")
        key, pos = key_match.group(), key_match.end()
        attr = None
        if text.startswith("{", pos):
            attr_match = _ATTR.match(text, pos)
            if attr_match is None:
                raise UdevSyntaxError(line, f"{key}: malformed {{attribute}} at column {pos + 1}")
            attr, pos = attr_match.group(1), attr_match.end()
        skip_space()
        op_match = _OPERATOR_CHARS.match(text, pos)
        if op_match is None or op_match.group() not in OPERATORS:
            found = op_match.group() if op_match else text[pos : pos + 1]
            raise UdevSyntaxError(line, f"{key}: unknown operator {found!r} (use one of {sorted(OPERATORS)})")
        op, pos = op_match.group(), op_match.end()
        skip_space()
        if not text.startswith('"', pos):
            raise UdevSyntaxError(line, f"{key}: value must be double-quoted, found {text[pos : pos + 12]!r}")
        value_match = _VALUE.match(text, pos)
        if value_match is None:
            raise UdevSyntaxError(line, f"{key}: unterminated quoted value")
        pairs.append(Pair(key, attr, op, value_match.group(1)))
        pos = value_match.end()
        skip_space()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise UdevSyntaxError(line, f"expected ',' after {key} at column {pos + 1}, found {text[pos]!r}")
        pos += 1
        skip_space()
        if pos == len(text):
            raise UdevSyntaxError(line, "trailing comma at the end of the rule")
    rule = Rule(line, tuple(pairs))
    for pair in rule.pairs:
        check_pair(pair, line)
    return rule


def check_pair(pair: Pair, line: int) -> None:
    """Key known, operator right for it, {attr} where needed, value in the key's format."""
    spec = KEYS.get(pair.key)
    if spec is None:
        raise UdevSyntaxError(line, f"unknown key {pair.key!r}")
    if pair.op not in spec.operators:
        kind = "match" if spec.operators <= MATCH else "assignment" if not spec.operators & MATCH else "this"
        raise UdevSyntaxError(line, f"operator {pair.op!r} is not allowed for {kind} key {pair.key}")
    if spec.attr is True and pair.attr is None:
        raise UdevSyntaxError(line, f"{pair.key} needs an {{attribute}}, e.g. {pair.key}{{name}}")
    if spec.attr is False and pair.attr is not None:
        raise UdevSyntaxError(line, f"{pair.key} takes no {{attribute}}, got {{{pair.attr}}}")
    if pair.key in VALUE_FORMATS:
        pattern, what = VALUE_FORMATS[pair.key]
        if not pattern.fullmatch(pair.value):
            raise UdevSyntaxError(line, f"{pair.key} must be {what}, got {pair.value!r}")


def parse_rules(text: str) -> list[Rule]:
    """Parse and check a whole rules file; raise ``UdevSyntaxError`` on the first problem."""
    rules = [parse_rule(body, line) for line, body in logical_lines(text)]
    labels_after: set[str] = set()
    for rule in reversed(rules):
        for target in rule.assigned("GOTO"):
            if target not in labels_after:
                raise UdevSyntaxError(rule.line, f"GOTO {target!r} has no LABEL after it")
        labels_after.update(rule.assigned("LABEL"))
        check_rule(rule)
    return rules


def check_rule(rule: Rule) -> None:
    """Rule-level conventions of this project and one classic udev pitfall."""
    if rule.assigned("SYMLINK") and not (rule.assigned("GROUP") and rule.assigned("MODE")):
        raise UdevSyntaxError(rule.line, "a rule that makes a SYMLINK must also set GROUP and MODE")
    interfaces = [v for v in rule.matched("KERNELS") if ":" in v]
    device_attrs = sorted({p.attr for p in rule.pairs if p.key == "ATTRS" and p.attr in USB_DEVICE_ATTRS})
    if interfaces and device_attrs:
        raise UdevSyntaxError(
            rule.line,
            f"KERNELS=={interfaces[0]!r} is a USB interface but ATTRS{{{device_attrs[0]}}} lives on the "
            "USB device; parent keys of one rule must match one device (use the device path, without ':')",
        )


# ------------------------------------------------------------------ the project's rules


def test_there_are_rule_files() -> None:
    assert {p.name for p in RULE_FILES} >= {"60-charger-serial.rules", "60-charger-gpio.rules"}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_is_well_formed(path: Path) -> None:
    assert parse_rules(path.read_text(encoding="utf-8"))


def serial_rules() -> list[Rule]:
    return parse_rules((RULES_DIR / "60-charger-serial.rules").read_text(encoding="utf-8"))


def test_stable_names_for_both_meter_buses_and_the_rfid_reader() -> None:
    links = {link for rule in serial_rules() for link in rule.assigned("SYMLINK")}
    assert links == {"charger-meter-bus0", "charger-meter-bus1", "charger-rfid0", "charger-rfid1"}


@pytest.mark.parametrize(
    ("link", "vendor", "product", "pinned_by"),
    [
        ("charger-meter-bus0", "0403", "6001", "serial"),
        ("charger-meter-bus1", "1a86", "7523", "port"),
        ("charger-rfid0", "10c4", "ea60", "serial"),
        ("charger-rfid1", "10c4", "ea60", "serial"),
    ],
)
def test_each_adapter_is_pinned_and_hidden_from_modemmanager(
    link: str, vendor: str, product: str, pinned_by: str
) -> None:
    (rule,) = [r for r in serial_rules() if link in r.assigned("SYMLINK")]
    assert rule.matched("SUBSYSTEM") == ["tty"]
    assert rule.matched("ATTRS", "idVendor") == [vendor]
    assert rule.matched("ATTRS", "idProduct") == [product]
    if pinned_by == "serial":
        assert rule.matched("ATTRS", "serial")
    else:
        assert rule.matched("KERNELS") and not rule.matched("ATTRS", "serial")
    assert rule.assigned("GROUP") == ["dialout"]
    assert rule.assigned("MODE") == ["0660"]
    assert rule.assigned("ENV", "ID_MM_DEVICE_IGNORE") == ["1"]


def test_ftdi_latency_timer_is_one_millisecond() -> None:
    (rule,) = [r for r in serial_rules() if r.assigned("ATTR", "latency_timer")]
    assert rule.assigned("ATTR", "latency_timer") == ["1"]
    assert rule.matched("DRIVER") == ["ftdi_sio"]
    assert rule.matched("SUBSYSTEM") == ["usb-serial"]


def test_gpio_chips_belong_to_group_gpio() -> None:
    rules = parse_rules((RULES_DIR / "60-charger-gpio.rules").read_text(encoding="utf-8"))
    (rule,) = [r for r in rules if r.matched("SUBSYSTEM") == ["gpio"]]
    assert rule.matched("KERNEL") == ["gpiochip*"]
    assert (rule.assigned("GROUP"), rule.assigned("MODE")) == (["gpio"], ["0660"])


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_udevadm_verify_accepts_the_file(path: Path) -> None:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm is not installed on this machine")
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this udevadm has no 'verify' command (systemd < 254)")
    result = subprocess.run(
        [udevadm, "verify", "--resolve-names=never", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ the checker itself


def test_continuations_are_joined_and_keep_the_first_line_number() -> None:
    text = (
        '# comment\n\nSUBSYSTEM=="tty", \\\n    GROUP="dialout", \\\n  MODE="0660"\nACTION=="add", RUN+="/bin/true"\n'
    )
    rules = parse_rules(text)
    assert [r.line for r in rules] == [3, 6]
    assert rules[0].pairs == (
        Pair("SUBSYSTEM", None, "==", "tty"),
        Pair("GROUP", None, "=", "dialout"),
        Pair("MODE", None, "=", "0660"),
    )


def test_spaces_around_operators_and_escaped_quotes_are_accepted() -> None:
    (rule,) = parse_rules('KERNEL == "tty*" , PROGRAM="/bin/sh -c \\"echo x\\""\n')
    assert rule.pairs[1].value == '/bin/sh -c \\"echo x\\"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('SUBSYSTEM=~"tty"', "unknown operator '=~'"),
        ('SUBSYSTEM==="tty"', "unknown operator '==='"),
        ('SUBSYSTEM "tty"', "unknown operator"),
        ("SUBSYSTEM==tty", "must be double-quoted"),
        ('SUBSYSTEM=="tty', "unterminated quoted value"),
        ('SUBSYTEM=="tty"', "unknown key 'SUBSYTEM'"),
        ('subsystem=="tty"', "expected a KEY"),
        ('SUBSYSTEM=="tty" GROUP="dialout"', "expected ','"),
        ('SUBSYSTEM=="tty",', "trailing comma"),
        ('ACTION="add"', "not allowed for match key ACTION"),
        ('GROUP=="dialout"', "not allowed for assignment key GROUP"),
        ('LABEL+="end"', "not allowed for assignment key LABEL"),
        ('ATTRS=="0403"', "ATTRS needs an {attribute}"),
        ('KERNEL{x}=="tty*"', "KERNEL takes no {attribute}"),
        ('KERNEL=="tty*", MODE="0669"', "MODE must be an octal mode"),
        ('KERNEL=="tty*", MODE="rw-rw----"', "MODE must be an octal mode"),
        ('KERNEL=="tty*", GROUP="Dial Out"', "GROUP must be a group name"),
        ('KERNEL=="ttyUSB0", SYMLINK+="meter"', "must also set GROUP and MODE"),
        ('KERNEL=="ttyUSB0", SYMLINK+="meter", GROUP="dialout"', "must also set GROUP and MODE"),
        ('ACTION=="remove", GOTO="nowhere"', "GOTO 'nowhere' has no LABEL after it"),
        ('LABEL="end"\nACTION=="remove", GOTO="end"', "GOTO 'end' has no LABEL after it"),
        ('KERNELS=="1-1.3:1.0", ATTRS{idVendor}=="1a86"', "parent keys of one rule must match one device"),
        ('SUBSYSTEM=="tty", \\\n# oops\nGROUP="dialout"', "comment cannot continue"),
        ('SUBSYSTEM=="tty", \\', "file ends inside a backslash-continued line"),
    ],
)
def test_checker_rejects_bad_rules_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(UdevSyntaxError, match=re.escape(message)):
        parse_rules(text)


def test_errors_name_the_line() -> None:
    with pytest.raises(UdevSyntaxError, match=r"^line 3: ") as caught:
        parse_rules('# ok\nKERNEL=="tty*", GROUP="dialout"\nKERNEL=="tty*", MODE:="777x"\n')
    assert caught.value.line == 3
