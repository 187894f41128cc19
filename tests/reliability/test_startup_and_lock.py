"""Start-up never hangs and never shares a state directory.

- A start-up error (a corrupt store under a simulated configuration) ends the process with a clear
  message, every time, within a bound (it used to hang at exit on gpiozero's pin finalizers).
- A failure after drivers were built closes them and releases the state directory.
- A second daemon on the same state directory exits at once, naming the directory and the holder's PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from security.daemon import SIM_DEFAULT, Daemon, free_port, run_to_exit

from controller.config.loader import load_sim_default
from controller.runtime import build as app_module
from controller.runtime.build import build
from controller.runtime.state_lock import LOCK_NAME, StateDirBusy, StateDirLock


def test_a_corrupt_store_under_a_simulated_config_exits_with_a_clear_message(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "reservations.db").write_bytes(b"not a database at all; a torn copy perhaps\n" * 200)
    code, out = run_to_exit(
        ["run", "--config", str(SIM_DEFAULT), "--state-dir", str(state), "--api", f"127.0.0.1:{free_port()}"], tmp_path
    )  # run_to_exit fails the test if the process is still running after its guard time
    assert code == 1
    assert "cannot run" in out and "reservations.db: not a usable reservation database" in out
    assert "Traceback" not in out


def test_an_empty_store_file_under_the_sim_is_refused_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "reservations.db").write_bytes(b"")
    code, out = run_to_exit(["run", "--sim", "--state-dir", str(state), "--api", f"127.0.0.1:{free_port()}"], tmp_path)
    assert code == 1 and "is an empty file (0 bytes)" in out
    assert (state / "reservations.db").read_bytes() == b""


def test_a_second_daemon_on_the_same_state_directory_exits_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = Daemon(["run", "--sim", "--state-dir", str(state), "--api", f"127.0.0.1:{free_port()}"], first_dir)
    first.start()
    try:
        assert first.proc is not None
        started = time.monotonic()
        code, out = run_to_exit(
            ["run", "--sim", "--state-dir", str(state), "--api", f"127.0.0.1:{free_port()}"], second_dir
        )
        took = time.monotonic() - started
        assert code == 1
        assert f"{state}: another charger-controller (PID {first.proc.pid}) is running" in out
        assert "ready" not in out  # it never served
        print(f"second daemon refused after {took:.2f} s")
        assert first.proc.poll() is None  # the first one is untouched
    finally:
        assert first.stop() == 0
    # once the first is gone, the directory is free again
    again = Daemon(["run", "--sim", "--state-dir", str(state), "--api", f"127.0.0.1:{free_port()}"], second_dir)
    again.start()
    assert again.stop() == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    """The kernel drops the lock with the process, however it dies (SIGKILL, power loss)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from controller.runtime.state_lock import StateDirLock; "
         "StateDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(StateDirBusy, match=rf"PID {holder.pid}\)"):
            StateDirLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    lock = StateDirLock(tmp_path)
    lock.acquire()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    lock.release()


def test_in_one_process_a_second_build_on_a_held_directory_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = load_sim_default()
        built = await build(config, state_dir=tmp_path)
        try:
            with pytest.raises(StateDirBusy, match=str(os.getpid())):
                await build(config, state_dir=tmp_path)
        finally:
            await built.stop()
        again = await build(config, state_dir=tmp_path)  # released by the stop
        await again.stop()

    asyncio.run(scenario())


def test_a_failure_after_the_drivers_were_built_closes_them_and_frees_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[object] = []
    real_runtime = app_module.Runtime

    def failing_runtime(hardware: list[object], *args: object, **kwargs: object) -> object:
        made.extend(hardware)
        raise RuntimeError("injected: the runtime could not be made")

    async def scenario() -> None:
        config = load_sim_default()
        monkeypatch.setattr(app_module, "Runtime", failing_runtime)
        with pytest.raises(RuntimeError, match="injected"):
            await build(config, state_dir=tmp_path)
        monkeypatch.setattr(app_module, "Runtime", real_runtime)
        assert len(made) == 2
        for hw in made:
            contactor = hw.contactor  # type: ignore[attr-defined]
            assert contactor._released, "a driver built before the failure was left open"
        built = await build(config, state_dir=tmp_path)  # the lock was released
        await built.stop()

    asyncio.run(scenario())
