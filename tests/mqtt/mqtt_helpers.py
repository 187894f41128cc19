"""A recording MQTT client for the tests, and the simulated charger with its bridge, in-process.

``Watcher`` is a real aiomqtt client: it subscribes, records every message, and lets a test await a topic's
payload (or a fresh answer) with a timeout instead of sleeping. ``running_sim`` builds the embedded
simulated charger of ``run --sim`` and attaches an MqttBridge to a broker, as the daemon does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from controller.config.loader import load_sim_default
from controller.config.model import MqttConfig
from controller.config.mqtt import with_mqtt_url
from controller.mqtt.backoff import Backoff
from controller.mqtt.bridge import MqttBridge
from controller.runtime.build import Built, build

WAIT_S = 15.0  # bound of every wait for a message; never an assertion on speed
PREFIX = "test/cc"
DISCOVERY = "homeassistant"


@dataclass(frozen=True, slots=True)
class Message:
    """One recorded message."""

    topic: str
    payload: str
    retain: bool


class Watcher:
    """A client subscribed to ``topics`` that records what arrives (use as ``async with``)."""

    def __init__(self, port: int, *topics: str, username: str | None = None, password: str | None = None) -> None:
        """Subscribe to ``topics`` (wildcards allowed) on the broker at 127.0.0.1:``port``."""
        self.port = port
        self.topics = topics or ("#",)
        self.username = username
        self.password = password
        self.messages: list[Message] = []
        self.last: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        """Connect, subscribe and start recording."""
        self._client = aiomqtt.Client("127.0.0.1", self.port, username=self.username, password=self.password,
                                      timeout=WAIT_S)
        async with asyncio.timeout(WAIT_S):
            await self._client.__aenter__()
            for topic in self.topics:
                await self._client.subscribe(topic, 1)
        self._task = asyncio.create_task(self._record(self._client))
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop recording and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(WAIT_S):
                    await self._client.__aexit__(None, None, None)

    async def _record(self, client: aiomqtt.Client) -> None:
        """Keep every message that arrives, and wake the waiters."""
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            recorded = Message(message.topic.value, payload.decode("utf-8", "replace"), bool(message.retain))
            async with self._changed:
                self.messages.append(recorded)
                self.last[recorded.topic] = recorded.payload
                self._changed.notify_all()

    async def until(self, check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Wait until ``check()`` is neither None nor False (re-checked at each message); its value.

        AssertionError after ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while (value := check()) is None or value is False:
                        await self._changed.wait()
                    return value
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s: {what}") from None

    async def value(self, topic: str, expected: str | Callable[[str], bool], timeout: float = WAIT_S) -> str:
        """Wait until the latest payload on ``topic`` is ``expected`` (or satisfies it); that payload."""
        def check() -> str | None:
            got = self.last.get(topic)
            if got is None:
                return None
            ok = expected(got) if callable(expected) else got == expected
            return got if ok else None

        return str(await self.until(check, f"{topic} = {expected!r} (last: {self.last.get(topic)!r})", timeout))

    def mark(self) -> int:
        """A position in the recording: ``after`` waits only for messages that come later."""
        return len(self.messages)

    async def after(self, mark: int, topic: str, timeout: float = WAIT_S) -> Message:
        """The first message on ``topic`` recorded after ``mark``."""
        def check() -> Message | None:
            return next((m for m in self.messages[mark:] if m.topic == topic), None)

        message: Message = await self.until(check, f"a message on {topic}", timeout)
        return message

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish as a client would (QoS 1)."""
        assert self._client is not None
        async with asyncio.timeout(WAIT_S):  # a PUBACK that never comes fails the test instead of hanging it
            await self._client.publish(topic, payload, 1, retain=retain)

    async def request(self, topic: str, payload: str | bytes, answer_topic: str, *, retain: bool = False
                      ) -> dict[str, Any]:
        """Publish a command and return the JSON of the next answer on ``answer_topic``."""
        mark = self.mark()
        await self.publish(topic, payload, retain=retain)
        answer: dict[str, Any] = json.loads((await self.after(mark, answer_topic)).payload)
        return answer

    def retained(self, prefix: str) -> dict[str, str]:
        """The latest payload of every recorded topic starting with ``prefix``."""
        return {topic: payload for topic, payload in self.last.items() if topic.startswith(prefix)}


def mqtt_config(url: str, **overrides: Any) -> MqttConfig:
    """The ``[mqtt]`` settings ``run --sim --mqtt-url`` makes, with a test prefix and a short reading period."""
    config = with_mqtt_url(load_sim_default(), url).mqtt
    assert config is not None
    fields: dict[str, Any] = {"topic_prefix": PREFIX, "publish_interval_s": 0.3, "client_id": "cc-test"}
    return dataclasses.replace(config, **{**fields, **overrides})


@contextlib.asynccontextmanager
async def running_sim(state_dir: Path, settings: MqttConfig, *, backoff: Backoff | None = None
                      ) -> AsyncIterator[tuple[Built, MqttBridge]]:
    """The simulated charger started with a bridge on ``settings``; both stopped (bridge first) afterwards."""
    built = await build(load_sim_default(), state_dir=state_dir)
    await built.start()
    bridge = MqttBridge(built.runtime, settings, backoff=backoff or Backoff(0.1, 1.0))
    try:
        await bridge.start()
        yield built, bridge
    finally:
        await bridge.stop()
        await built.stop()


def evse_topic(evse_id: int, key: str, prefix: str = PREFIX) -> str:
    """A state topic of an EVSE under the test prefix."""
    return f"{prefix}/evse/{evse_id}/{key}"
