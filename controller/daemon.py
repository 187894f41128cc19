"""``charger-controller run``: the controller and its HTTP API in one asyncio loop until a signal.

Under systemd (``Type=notify``, controller.sd_notify) the daemon says ``READY=1`` only once the drivers,
the store and the API are up (and, with ``[mqtt]``, the bridge's first connection attempt has finished);
sends ``WATCHDOG=1`` only while the loop-health probe passes (controller.runtime.health: the loop turns and
every EVSE's interlock evaluation runs); keeps ``STATUS=`` to a one-line summary; and says ``STOPPING=1``
when the orderly shutdown begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.api.app import create_app
from controller.api.auth import require_token_for_bind
from controller.api.server import ApiServer
from controller.config.model import ChargerConfig, parse_bind
from controller.runtime.build import build
from controller.runtime.health import LoopHealth, summary_line
from controller.runtime.runtime import Runtime
from controller.sd_notify import Notifier, watchdog_timeout_s

if TYPE_CHECKING:
    from controller.mqtt.bridge import MqttBridge  # imported at run time only with [mqtt]: aiomqtt and paho
    from controller.ocpp.front import OcppFront  # imported at run time only with [ocpp]: ocpp and websockets

log = logging.getLogger(__name__)

FIRST_PROBE_S = 0.5  # the first keep-alive follows READY this soon (its probe needs one round trip)
PROBE_MAX_AGE = 1.5  # a probe check may come this many keep-alive intervals after the previous one
STATUS_PERIOD_S = 2.0  # STATUS= is looked at this often, and sent only when it changed
STOPPING_STATUS = "STATUS=stopping: contactors open, then LEDs, then drivers"
# Test hook (tests/test_systemd_notify.py): SIGUSR2 blocks the loop this many seconds; unset in production.
BLOCK_HOOK_ENV = "CHARGER_TEST_BLOCK_LOOP_ON_SIGUSR2"


async def run_daemon(
    config: ChargerConfig,
    *,
    api: str | None = None,
    state_dir: Path | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> bool:
    """Build and start everything, serve the API, and shut down safely when ``stop`` is set or on SIGTERM/SIGINT.

    Returns True when the shutdown was a reset ordered by the CSMS (OCPP Reset): the caller starts again.

    ``api`` (HOST:PORT) and ``state_dir`` override the configuration file. Raises ValueError for a
    non-loopback bind without an access token, OSError when the API address cannot be bound.
    """
    host, port = parse_bind(api) if api else (config.api.host, config.api.port)
    require_token_for_bind(host, config.api.access_token)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # not possible outside the main thread (tests) or where signals are not supported
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    _install_test_hooks(loop)
    notifier = Notifier.from_environment()
    built = await build(config, state_dir=state_dir)
    supervision: list[asyncio.Task[None]] = []
    mqtt: MqttBridge | None = None
    ocpp: OcppFront | None = None
    restart = False
    stopper = stop

    def reset_ordered() -> None:
        """A CSMS-ordered Reset is due: stop in order, then ``run_daemon`` returns True (the CLI restarts)."""
        nonlocal restart
        restart = True
        stopper.set()

    try:
        await built.start()
        app = create_app(built.runtime, access_token=config.api.access_token, bind_host=host)
        server = ApiServer(app, host, port)
        serving = await server.start(stop=stop)
        # Hook: every further front (OCPP, MQTT) starts here and is awaited until it is up, before READY=1 below;
        # one that cannot start raises, as the API does, and the start fails without READY.
        # MQTT is "up" once its first connection attempt has finished, either way: a broker that is down never
        # keeps the controller from running (the bridge retries in the background and never raises).
        mqtt = await _start_mqtt(config, built.runtime)
        # OCPP is "up" once started: it connects (and reconnects) to the CSMS in the background.
        ocpp = await _start_ocpp(config, built.runtime, state_dir or config.controller.state_dir, reset_ordered)
        if on_ready is not None:
            on_ready(server.url)
        if notifier is not None:
            supervision = _notify_ready(notifier, built.runtime)
        await serving
    finally:
        for task in supervision:
            task.cancel()
        for task in supervision:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if notifier is not None:
            notifier.send("STOPPING=1", STOPPING_STATUS)
        if ocpp is not None:
            await ocpp.stop()
        if mqtt is not None:
            await mqtt.stop()  # "offline" on the availability topic, then DISCONNECT (no last will)
        log.info("shutting down: contactors open, then LEDs, then drivers")
        await built.stop()
        if notifier is not None:
            notifier.close()
    return restart


async def _start_ocpp(config: ChargerConfig, runtime: Runtime, state_dir: Path,
                      on_reset: Callable[[], None]) -> OcppFront | None:
    """The OCPP station started when ``[ocpp]`` (or ``run --ocpp-url``) asks for one; imported only then."""
    if config.ocpp is None:
        return None
    from controller.ocpp.front import OcppFront

    front = OcppFront(runtime, config.ocpp, state_dir, on_reset=on_reset)
    await front.start()
    return front


async def _start_mqtt(config: ChargerConfig, runtime: Runtime) -> MqttBridge | None:
    """The MQTT bridge started when ``[mqtt]`` (or ``run --mqtt-url``) asks for one; imported only then."""
    if config.mqtt is None:
        return None
    from controller.mqtt.bridge import MqttBridge

    bridge = MqttBridge(runtime, config.mqtt)
    await bridge.start()
    return bridge


def _notify_ready(notifier: Notifier, runtime: Runtime) -> list[asyncio.Task[None]]:
    """Say READY=1 with the first STATUS=, then start the status reports and, under a watchdog, the keep-alives."""
    line = _summary(runtime)
    notifier.send("READY=1", f"STATUS={line}")
    tasks = [asyncio.ensure_future(_report_status(notifier, runtime, line))]
    timeout = watchdog_timeout_s()
    if timeout is not None:
        interval = timeout / 2
        log.info("systemd watchdog %.1f s: keep-alive every %.1f s while the loop-health probe passes", timeout,
                 interval)
        health = LoopHealth(runtime, max_age_s=PROBE_MAX_AGE * interval)
        tasks.append(asyncio.ensure_future(_keep_alive(notifier, health, interval)))
    for task in tasks:
        task.add_done_callback(_log_failure)
    return tasks


async def _keep_alive(notifier: Notifier, health: LoopHealth, interval_s: float) -> None:
    """WATCHDOG=1 every ``interval_s`` while the probe passes, nothing while it fails: systemd then restarts us."""
    health.check()  # the first check only asks for the evaluations that the next one judges
    await asyncio.sleep(min(FIRST_PROBE_S, interval_s))
    withheld = False
    while True:
        verdict = health.check()
        if verdict.healthy:
            notifier.send("WATCHDOG=1")
            if withheld:
                log.info("watchdog keep-alive resumed: the loop-health probe passes again")
        elif verdict.reason:
            log.warning("watchdog keep-alive withheld: %s", verdict.reason)
        withheld = not verdict.healthy
        await asyncio.sleep(interval_s)


async def _report_status(notifier: Notifier, runtime: Runtime, last: str) -> None:
    """STATUS= again when the summary changed, looked at every STATUS_PERIOD_S (so never more often than that)."""
    while True:
        await asyncio.sleep(STATUS_PERIOD_S)
        line = _summary(runtime)
        if line != last and notifier.send(f"STATUS={line}"):
            last = line


def _summary(runtime: Runtime) -> str:
    """The one-line summary of the runtime's status document; what went wrong if it cannot be had."""
    try:
        return summary_line(runtime.status())
    except Exception as exc:
        return f"status unavailable: {type(exc).__name__}: {exc}"


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Done callback of a notification task: its failure is logged (a dead keep-alive lets systemd restart us)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("systemd notification task failed", exc_info=task.exception())


def _install_test_hooks(loop: asyncio.AbstractEventLoop) -> None:
    """Only with ``$CHARGER_TEST_BLOCK_LOOP_ON_SIGUSR2=S``: SIGUSR2 blocks the event loop for S seconds.

    The watchdog tests need a stalled loop to show that the keep-alives stop; nothing sets the variable in
    production, and without it SIGUSR2 keeps its default action.
    """
    value = os.environ.get(BLOCK_HOOK_ENV, "")
    if not value:
        return
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 600:
        log.warning("%s=%r ignored: expected seconds, more than 0 and at most 600", BLOCK_HOOK_ENV, value)
        return

    def block() -> None:
        """Stall the loop as a hung driver call would: nothing else in it runs meanwhile."""
        log.warning("test hook: blocking the event loop for %.1f s", seconds)
        time.sleep(seconds)
        log.warning("test hook: event loop released")

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR2, block)
        log.warning("test hook armed: SIGUSR2 blocks the event loop for %.1f s (%s)", seconds, BLOCK_HOOK_ENV)
