"""`python -m devtools.keep_running --name web -- COMMAND...`: restart a process of `make run` when it dies.

honcho stops every process when one exits, so one crashed Celery worker used to take the site,
the model server and beat down with it. Each line of Procfile.dev runs under this wrapper
instead: when the command exits, the wrapper says so (name, exit code or signal, how many
crashes so far, appended to var/log/crashes.log too) and starts it again after a backoff that
doubles from 1 s up to 30 s, reset once the command has stayed up for a minute. SIGINT and
SIGTERM (Ctrl-C, honcho stopping) are passed on to the command, and the wrapper ends with it.
See docs/operations.md, "make run".
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

BACKOFF_START_S, BACKOFF_MAX_S, STABLE_AFTER_S = 1.0, 30.0, 60.0
STOP_GRACE_S = 15.0


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Keeper:
    """Runs one command again and again until told to stop."""

    def __init__(self, name: str, command: list[str], crash_log: Path | None) -> None:
        self.name, self.command, self.crash_log = name, command, crash_log
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.crashes = 0

    def say(self, message: str) -> None:
        line = f"[keep_running] {self.name}: {message}"
        print(line, file=sys.stderr, flush=True)
        if self.crash_log is not None:
            self.crash_log.parent.mkdir(parents=True, exist_ok=True)
            with self.crash_log.open("a") as log:
                log.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        backoff = BACKOFF_START_S
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command)
            returncode = self._wait()
            if self.stopping:
                return 0
            self.crashes += 1
            if time.monotonic() - started >= STABLE_AFTER_S:
                backoff = BACKOFF_START_S
            self.say(f"{describe(returncode)} (crash {self.crashes}); restarting in {backoff:.0f} s")
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.1)
            if self.stopping:
                return 0
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _wait(self) -> int:
        assert self.child is not None
        while True:
            try:
                returncode = self.child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if self.stopping:
                    try:
                        returncode = self.child.wait(timeout=STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        self.child.kill()
                        returncode = self.child.wait()
                    break
        return returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="What to call the process in messages (web, worker ...).")
    parser.add_argument("--crash-log", type=Path, default=Path("var/log/crashes.log"),
                        help="Append every crash here too (default var/log/crashes.log).")  # fmt: skip
    parser.add_argument("command", nargs=argparse.REMAINDER, help="The command, after --.")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to keep running after --")
    return Keeper(args.name, command, args.crash_log).run()


if __name__ == "__main__":
    sys.exit(main())
