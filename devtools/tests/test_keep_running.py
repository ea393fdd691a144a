"""`make run` keeps running when one process dies: the wrapper restarts it, says so, and stops on request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HONCHO = Path(sys.executable).with_name("honcho")


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_crashing_process_is_restarted_with_a_message_and_logged(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs", tmp_path / "crashes.log"
    crash = f"open({str(runs)!r}, 'a').write('x'); raise SystemExit(3)"
    keeper = subprocess.Popen(
        [sys.executable, "-m", "devtools.keep_running", "--name", "flaky", "--crash-log", str(log), "--",
         sys.executable, "-c", crash],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: runs.exists() and len(runs.read_text()) >= 2), "the command was not started again"
    finally:
        keeper.send_signal(signal.SIGTERM)
        _, stderr = keeper.communicate(timeout=20)
    assert keeper.returncode == 0
    assert "flaky: exited with code 3 (crash 1); restarting in 1 s" in stderr
    assert "(crash 1)" in log.read_text()


def test_under_honcho_one_killed_process_leaves_the_others_running(tmp_path: Path) -> None:
    """What `make run` does with Procfile.dev: a worker killed by hand comes back, the web never stops."""
    pids = {name: tmp_path / f"{name}.pids" for name in ("web", "worker")}
    serve = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(600)"
    procfile = tmp_path / "Procfile"
    procfile.write_text("".join(
        f"{name}: {sys.executable} -m devtools.keep_running --name {name} --crash-log {tmp_path / 'crashes.log'} "
        f"-- {sys.executable} -c \"{serve}\" {path}\n"
        for name, path in pids.items()
    ))  # fmt: skip
    command = [str(HONCHO), "-f", str(procfile), "-d", str(ROOT), "start"]
    honcho = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        started = lambda name: pids[name].exists() and pids[name].read_text().count("\n")  # noqa: E731
        assert wait_for(lambda: started("web") == 1 and started("worker") == 1), "the processes did not start"
        first_worker = int(pids["worker"].read_text().split()[0])
        os.kill(first_worker, signal.SIGKILL)
        assert wait_for(lambda: started("worker") == 2), "the killed worker was not restarted"
        assert honcho.poll() is None and started("web") == 1, "the web process was stopped with the worker"
        os.kill(int(pids["web"].read_text().split()[0]), 0)  # the first web process is still alive
    finally:
        os.killpg(honcho.pid, signal.SIGINT)
        output, _ = honcho.communicate(timeout=30)
    assert "worker: killed by SIGKILL (crash 1); restarting in 1 s" in output
