"""The ``charger-controller`` command: run the daemon, check a configuration, or talk to a running one.

Imports stay lazy: ``--help``, ``check-config`` and the client commands load neither asyncio nor the
web stack (fastapi, starlette, uvicorn), which only ``run`` needs. Output into a pipe that closes early
(``charger-controller status | head -1``) ends the command quietly with status 1, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.api.client import add_client_commands

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DISTRIBUTION = "charger-controller"
EXIT_BROKEN_PIPE = 1


class _VersionAction(argparse.Action):
    """``--version``: print "charger-controller X.Y.Z" from the installed package's metadata, then exit 0.

    Looked up only when asked for, so every other command is spared importing importlib.metadata.
    """

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        """A flag without a value that stores nothing."""
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Print the version line and end the command (exit status 0)."""
        print(f"{DISTRIBUTION} {package_version()}")
        parser.exit()


def package_version() -> str:
    """The installed version of the charger-controller distribution, or "unknown (not installed)" in a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charger-controller", description="EV charger controller")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (COMMAND --help for its options)")

    run = sub.add_parser("run", help="run the controller (on a Pi with --config, or simulated with --sim)")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    source.add_argument("--sim", action="store_true", help="the embedded simulated 2-EVSE charger")
    run.add_argument("--api", metavar="HOST:PORT", help="bind the HTTP API here (overrides the file)")
    run.add_argument("--state-dir", metavar="DIR", help="where reservations.db lives (overrides the file)")
    run.add_argument("--api-token-file", metavar="FILE",
                     help="file holding the API access token (16-512 printable ASCII characters; surrounding "
                          "whitespace is ignored); overrides api.access_token, and allows --api off loopback")
    run.add_argument("--mqtt-url", metavar="URL",
                     help="attach to this MQTT broker (mqtt://host[:1883] or mqtts://host[:8883]): Home Assistant "
                          "discovery, state topics and commands; overrides [mqtt] url of the file, or adds an [mqtt] "
                          "section with its defaults")
    run.add_argument("--ocpp-url", metavar="URL",
                     help="connect to this OCPP CSMS (ws://host[:port][/path] or wss://...; the station id is appended "
                          "as the last path segment); overrides [ocpp] url of the file, or adds an [ocpp] section "
                          "(then --ocpp-id is needed too)")
    run.add_argument("--ocpp-id", metavar="ID", help="the station id the CSMS knows this charger by (overrides [ocpp] "
                                                     "station_id)")
    run.add_argument("--ocpp-version", choices=["2.0.1", "1.6"],
                     help="OCPP version to speak (default 2.0.1; overrides [ocpp] version)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="least severe log lines written to stderr (default INFO)")
    run.set_defaults(func=_run)

    check = sub.add_parser("check-config", help="validate a configuration file and print every problem")
    check.add_argument("file", metavar="FILE", help="the configuration file (TOML)")
    check.set_defaults(func=_check_config)

    demo = sub.add_parser("demo", help="print a short walk through the reservation core on a 3-EVSE site")
    demo.set_defaults(func=_demo)

    add_client_commands(sub)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    # Our bus adapter logs one clear line per meter fault; pymodbus' own frame dumps are noise.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if level != "DEBUG":
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from controller.config.loader import ConfigError, load_config, load_sim_default, read_token_file
    from controller.daemon import run_daemon

    _setup_logging(args.log_level)
    try:
        token = read_token_file(args.api_token_file) if args.api_token_file is not None else None
        config = load_sim_default(access_token=token) if args.sim else load_config(args.config, access_token=token)
        if args.mqtt_url is not None:
            from controller.config.mqtt import with_mqtt_url

            config = with_mqtt_url(config, args.mqtt_url)
        if args.ocpp_url is not None or args.ocpp_id is not None or args.ocpp_version is not None:
            from controller.config.ocpp import with_ocpp_flags

            config = with_ocpp_flags(config, args.ocpp_url, args.ocpp_id, args.ocpp_version)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1

    def ready(url: str) -> None:
        print(f"charger-controller ready: API on {url} ({len(config.evses)} EVSEs)", flush=True)

    try:
        restart = asyncio.run(
            run_daemon(
                config,
                api=args.api,
                state_dir=Path(args.state_dir) if args.state_dir else None,
                on_ready=ready,
            )
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"charger-controller: cannot run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    if restart:
        _restart()
    return 0


def _restart() -> None:
    """Start this command again in this process (an OCPP Reset): same interpreter, same arguments."""
    print("charger-controller: restarting (reset ordered by the CSMS)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "controller.cli", *sys.argv[1:]])


def _check_config(args: argparse.Namespace) -> int:
    from controller.config.loader import check_config_main

    return check_config_main(args.file)


def _demo(args: argparse.Namespace) -> int:
    from controller.core.demo import run_demo

    # printed at the end, not line by line: the core catches (and logs) what its event subscribers raise, so a
    # closed pipe met inside one would print tracebacks instead of reaching main()
    lines: list[str] = []
    run_demo(lines.append)
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; returns the exit status.

    A reader that stops early (``| head -1``) is no error worth a traceback: as the Python documentation
    advises for SIGPIPE, the rest of the output goes to /dev/null and the exit status is 1.
    """
    try:
        try:
            args = _parser().parse_args(argv)
            status: int = args.func(args)
        finally:  # also after --help and --version (SystemExit): their text is still in the buffer
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
