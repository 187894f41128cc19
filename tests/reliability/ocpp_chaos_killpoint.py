"""Kill points the random chaos rarely hits: the station SIGKILLs itself at an exact instant (both OCPP versions).

``python -c HOOK POINT run ...`` is the daemon whose first commit of a queued transaction message matching POINT
(2.0.1: a TransactionEvent whose event_type is Started or Ended; 1.6: a StartTransaction or StopTransaction) is
followed at once by a SIGKILL of the process: it dies right after the message and the open-transaction row were
committed (the layers' TransactionFlow._write writes both in one SQLite transaction), before anything was sent.
``kill_point_run`` runs one session on such a station, restarts it on the same state directory and hands back the
CSMS's records once the transaction has ended (or a bounded wait is over).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from security.daemon import READY, REPO, Daemon, call, free_port

from ..ocpp.csms import Csms
from .ocpp_chaos_base import ONLINE_S, STATE_S, Flavour, wait_online, write_config

HOOK = """
import os, signal, sys
from controller import cli
from controller.ocpp.station.queue import MessageQueue
original = MessageQueue.enqueue_transaction_event
def enqueue_then_die(self, ref, build, **kwargs):
    message = original(self, ref, build, **kwargs)
    if sys.argv[1] in (message.action, message.payload.get("event_type")):
        os.kill(os.getpid(), signal.SIGKILL)
    return message
MessageQueue.enqueue_transaction_event = enqueue_then_die
sys.exit(cli.main(sys.argv[2:]))
"""


class HookedDaemon(Daemon):
    """A life of the station that kills itself right after the first queued message matching ``point`` is
    committed."""

    def __init__(self, point: str, args: list[str], log_dir: Path) -> None:
        """``point``: a TransactionEvent's event type (Started, Ended) or an action (StartTransaction...)."""
        super().__init__(args, log_dir)
        self.point = point

    def start(self) -> HookedDaemon:
        """Spawn ``python -c HOOK`` and wait (bounded) for the ready line, as ``Daemon.start`` does."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", HOOK, self.point, *self.args],
                                         cwd=self.stdout_path.parent, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + ONLINE_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the hooked daemon exited early:\n{self.logs()[-3000:]}"
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY):].split()[0]
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the hooked daemon was not ready within {ONLINE_S} s:\n{self.logs()[-3000:]}")


async def kill_point_run(tmp_path: Path, flavour: Flavour, point: str, stop_by_token: bool) -> tuple[Csms, str]:
    """One session on a station that SIGKILLs itself at ``point`` ("Started" or "Ended"), a restart on the same
    state directory, and the CSMS's records once the transaction has ended (or a bounded wait is over);
    (csms, the session's token)."""
    token = f"KILLPOINT-{point.upper()}"
    async with Csms(versions=(flavour.version,)) as csms:
        flavour.prepare(csms)
        config = write_config(tmp_path, csms.url, flavour.version)
        args = ["run", "--config", str(config), "--state-dir", str(tmp_path / "state")]
        (tmp_path / "life-0").mkdir()
        (tmp_path / "life-1").mkdir()
        first = HookedDaemon(flavour.kill_points[point], [*args, "--api", f"127.0.0.1:{free_port('127.0.0.1')}"],
                             tmp_path / "life-0")
        await asyncio.to_thread(first.start)
        assert first.proc is not None
        second: Daemon | None = None
        try:
            await wait_online(csms, first)
            for method, path, body in (("POST", "/evses/1/token", {"id_token": token}),
                                       ("POST", "/sim/evses/1/plug", None)):
                response = await asyncio.to_thread(call, first.url, method, path, json=body)
                assert response.status_code == 200, response.text
            if stop_by_token:
                deadline = time.monotonic() + STATE_S
                while not any(flavour.started(m) for m in csms.messages):
                    assert time.monotonic() < deadline, f"no transaction started:\n{first.logs()[-3000:]}"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
                with contextlib.suppress(requests.RequestException):  # it dies while answering, or just after
                    await asyncio.to_thread(call, first.url, "POST", "/evses/1/token", json={"id_token": token})
            code = await asyncio.to_thread(first.proc.wait, STATE_S)
            assert code == -signal.SIGKILL, f"the hook did not fire (exit status {code}):\n{first.logs()[-3000:]}"
            floor = max(c.serial for c in csms.connections)
            second = Daemon([*args, "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path / "life-1")
            await asyncio.to_thread(second.start)
            await wait_online(csms, second, after=floor)
            deadline = time.monotonic() + STATE_S
            while time.monotonic() < deadline and not any(flavour.ended(m) for m in csms.messages):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # time for anything that should not come (a second end)
        finally:
            for daemon in (first, second):
                if daemon is not None and daemon.proc is not None and daemon.proc.poll() is None:
                    await asyncio.to_thread(daemon.stop)
    csms.assert_valid()
    return csms, token
