"""The MQTT bridge: one broker connection kept up for as long as the controller runs, whatever the broker does.

At every connection it subscribes to the commands and Home Assistant's status, says ``online`` on the
availability topic (its last will says ``offline``, so a killed controller shows offline), publishes every
discovery config and the whole state (all retained), then publishes state changes as the port's events
announce them, and the meter readings every ``publish_interval_s``. A lost or refused connection is retried
with a jittered back-off (1 s doubling to 60 s) and logged, throttled; nothing raises into the daemon, and
the controller never waits for the broker beyond the first attempt at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from controller.mqtt.backoff import Backoff, ThrottledLog
from controller.mqtt.commands import Commands
from controller.mqtt.discovery import discovery_configs, software_version
from controller.mqtt.settings import BrokerSettings
from controller.mqtt.state import measurement_payloads, state_payloads
from controller.mqtt.topics import OFFLINE, ONLINE, Topics
from controller.port.charger import Charger

log = logging.getLogger(__name__)

QOS = 1
FIRST_ATTEMPT_WAIT_S = 20.0  # the longest start waits for the first attempt (TCP connect 5 s + CONNACK 10 s)
STOP_WAIT_S = 5.0  # an orderly stop: "offline" and DISCONNECT within this, else the connection is dropped
OFFLINE_PUBLISH_S = 2.0
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30


class MqttBridge:
    """The MQTT front of one charger: ``start`` it once, ``stop`` it once; it reconnects by itself in between."""

    def __init__(self, charger: Charger, config: BrokerSettings, *, backoff: Backoff | None = None,
                 log_period_s: float = 60.0) -> None:
        """A bridge for ``charger`` to the broker of ``config``; ``backoff`` paces reconnects (tests shorten it)."""
        self._charger = charger
        self._config = config
        self._topics = Topics(config.topic_prefix, config.discovery_prefix)
        self._backoff = backoff or Backoff()
        self._throttle = ThrottledLog(log, log_period_s)
        self._commands = Commands(charger, self._topics, self._throttle)
        self._sw_version = software_version()
        self._sent: dict[str, str] = {}  # what this connection published last, per topic (publish only changes)
        self._dirty = asyncio.Event()  # the port announced a change
        self._stopping = asyncio.Event()
        self._first_attempt = asyncio.Event()  # set once the first connection attempt has finished, either way
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.connections = 0  # successful connections so far (tests, status)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up right now."""
        return self._connected

    async def start(self, wait_s: float = FIRST_ATTEMPT_WAIT_S) -> None:
        """Start the connection task and wait (at most ``wait_s``) until its first attempt has finished.

        Never raises for the broker: a broker that is down leaves the bridge retrying in the background.
        """
        if self._task is not None:
            return
        self._unsubscribe = self._charger.events.subscribe(lambda _event: self._dirty.set())
        self._task = asyncio.ensure_future(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), wait_s)
        if not self._first_attempt.is_set():
            log.warning("MQTT: no answer from %s within %.0f s; going on without it, retrying in the background",
                        self._where, wait_s)

    async def stop(self) -> None:
        """Say ``offline`` (retained) and disconnect if connected, and end the task; never raises."""
        self._stopping.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
        except (TimeoutError, asyncio.CancelledError, Exception):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def _where(self) -> str:
        """The broker as the logs name it (the URL holds no credentials: the config refuses them there)."""
        return self._config.url

    # ------------------------------------------------------------ the connection

    async def _run(self) -> None:
        """Connect, serve, and on any failure wait and connect again, until ``stop``."""
        failures = 0
        while not self._stopping.is_set():
            try:
                client = self._client()
                async with client:
                    if failures:
                        log.info("MQTT connected to %s after %d failed attempt%s", self._where, failures,
                                 "" if failures == 1 else "s")
                    else:
                        log.info("MQTT connected to %s as %s", self._where, self._config.client_id)
                    failures = 0
                    self._backoff.reset()
                    self._throttle.forget("connect")
                    await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._connection_failed(exc, failures)
            finally:
                self._connected = False
                self._first_attempt.set()
            if self._stopping.is_set():
                break
            delay = self._backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _connection_failed(self, exc: Exception, failures: int) -> None:
        """Log a lost or refused connection: at once the first time, then throttled; never the password."""
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, aiomqtt.MqttError | OSError | ssl.SSLError):
            self._throttle.log(logging.WARNING, "connect", "MQTT broker %s: %s (attempt %d; retrying with back-off "
                               "up to %.0f s)", self._where, reason, failures, self._backoff.max_s)
        else:  # a fault of ours: with its traceback, still retried
            self._throttle.log(logging.ERROR, "connect", "MQTT bridge failed (attempt %d), retrying", failures,
                               exc_info=exc)

    def _client(self) -> aiomqtt.Client:
        """A client for the configured broker, with the ``offline`` last will and TLS for mqtts://."""
        config = self._config
        tls_context = None
        if config.tls:
            cafile = str(config.ca_file) if config.ca_file is not None else None
            tls_context = ssl.create_default_context(cafile=cafile)  # verifies the broker's name and chain
        return aiomqtt.Client(
            config.host, config.port, identifier=config.client_id, username=config.username,
            password=config.password, will=aiomqtt.Will(self._topics.availability, OFFLINE, QOS, retain=True),
            tls_context=tls_context, timeout=CONNECT_TIMEOUT_S, keepalive=KEEPALIVE_S, clean_session=True,
            logger=logging.getLogger("controller.mqtt.paho"),
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: subscribe, publish everything, then serve commands and changes until stop or failure."""
        self._sent.clear()
        for topic in self._topics.subscriptions():
            await client.subscribe(topic, QOS)
        await self._publish(client, self._topics.availability, ONLINE)
        await self._publish_discovery(client)
        await self._publish_state(client, measurements=True)
        self._connected = True
        self.connections += 1
        self._first_attempt.set()
        await _first_of(self._receive(client), self._publish_changes(client), self._stopping.wait())
        if self._stopping.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self._topics.availability, OFFLINE, QOS, retain=True, timeout=OFFLINE_PUBLISH_S)
                log.info("MQTT: offline published, disconnecting from %s", self._where)

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Answer each command; republish discovery and state when Home Assistant says it is ``online``."""
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if topic == self._topics.ha_status:
                if payload.strip() == ONLINE.encode() and not message.retain:  # a retained one: just published all
                    log.info("MQTT: Home Assistant is online: publishing discovery and state again")
                    self._sent.clear()
                    await self._publish(client, self._topics.availability, ONLINE)
                    await self._publish_discovery(client)
                    await self._publish_state(client, measurements=True)
                continue
            command = self._topics.parse_command(topic)
            if command is None:
                continue
            answer = await self._commands.handle(command, topic, payload, bool(message.retain))
            await client.publish(answer.topic, answer.payload, QOS, retain=False)
            self._dirty.set()  # a command may change the state without an event (e.g. a refused one changes none)

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        """State on every announced change; meter readings (and the rest) every ``publish_interval_s``."""
        loop = asyncio.get_running_loop()
        interval = self._config.publish_interval_s
        next_reading = loop.time() + interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), max(0.0, next_reading - loop.time()))
            self._dirty.clear()
            readings = loop.time() >= next_reading
            if readings:
                next_reading = loop.time() + interval
            await self._publish_state(client, measurements=readings)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        """Every Home Assistant discovery config (retained)."""
        for topic, payload in discovery_configs(self._topics, self._charger.evse_ids(), self._sw_version).items():
            await self._publish(client, topic, payload)

    async def _publish_state(self, client: aiomqtt.Client, *, measurements: bool) -> None:
        """The state topics whose payload changed since this connection last sent them (retained)."""
        try:
            entries = self._charger.status()["evses"]
        except Exception as exc:
            self._throttle.log(logging.ERROR, "status", "MQTT: the status document is unavailable", exc_info=exc)
            return
        for entry in entries:
            payloads = state_payloads(self._topics, entry)
            if measurements:
                payloads.update(measurement_payloads(self._topics, entry))
            for topic, payload in payloads.items():
                await self._publish(client, topic, payload)

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: str) -> None:
        """Publish retained, unless this connection already sent this very payload there."""
        if self._sent.get(topic) == payload:
            return
        await client.publish(topic, payload, QOS, retain=True)
        self._sent[topic] = payload


async def _first_of(*aws: Awaitable[Any]) -> None:
    """Run these together until the first ends; cancel the others, and raise what the first raised."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            raise exc
