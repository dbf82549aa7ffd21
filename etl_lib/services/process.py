"""Start, watch and stop a detached local server process, with its pid and log under a state folder."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from etl_lib.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    """What ``services status`` prints for one service."""

    name: str
    running: bool
    pid: int | None
    endpoint: str
    detail: str = ""


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


class ManagedProcess:
    """A server process started detached, tracked by a pid file in ``state_dir``."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.state_dir = state_dir
        self.pid_file = state_dir / "process.json"
        self.log_file = state_dir / f"{name}.log"
        #: The pid this object started, if it started one (its command line may not read as started yet).
        self.started_pid: int | None = None

    def pid(self) -> int | None:
        """Pid of the live process this folder started, or None."""
        if not self.pid_file.is_file():
            return None
        record = json.loads(self.pid_file.read_text(encoding="utf-8"))
        pid = int(record["pid"])
        if not _alive(pid) or not _cmdline_matches(pid, str(record["marker"])):
            return None
        return pid

    def start(
        self,
        command: Sequence[str],
        marker: str,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stdin_text: str | None = None,
    ) -> int:
        """Start ``command`` in its own session with output appended to the log.

        Args:
            command: the server command line.
            marker: a string of the command line that identifies this server (guards against pid reuse).
            env: extra environment variables.
            user: run as this user (a server that refuses to run as root).
            stdin_text: written to the server's standard input, which is then closed (settings that must
                not appear on a command line or in a file, such as a password).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                user=user,
            )
            if stdin_text is not None:
                assert process.stdin is not None
                process.stdin.write(stdin_text.encode())
                process.stdin.close()
        self.pid_file.write_text(json.dumps({"pid": process.pid, "marker": marker}), encoding="utf-8")
        self.started_pid = process.pid
        return process.pid

    def exited(self) -> bool:
        """Whether the server is gone.

        One this object started is judged by its pid alone: while it starts, what /proc shows of its command
        line can differ from the marker (a server may rewrite its argv area, a script execs its program).
        """
        if self.started_pid is not None:
            return not _alive(self.started_pid)
        return self.pid() is None

    def wait_until(
        self,
        healthy: Callable[[], bool],
        timeout: float,
        what: str,
    ) -> None:
        """Poll ``healthy`` until it is true; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                raise ServiceError(f"{self.name} exited while starting; its log ends with:\n{log_tail(self.log_file)}")
            try:
                if healthy():
                    return
            except ServiceError:
                raise
            except Exception as error:  # noqa: BLE001 - a health probe may fail any way while the server boots
                log.debug("%s not healthy yet: %s", self.name, error)
            time.sleep(0.3)
        raise ServiceError(
            f"{self.name} did not become healthy ({what}) within {timeout:.0f}s; "
            f"its log ends with:\n{log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Stop the process (``sig``, then SIGKILL after ``timeout``). Returns True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            _reap(pid)
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                _reap(pid)
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # A server started by this very process stays a zombie until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        state = stat.read_text(encoding="utf-8", errors="replace").rsplit(")", 1)[-1].split()
        if state and state[0] == "Z":
            _reap(pid)
            return False
    return True


def _cmdline_matches(pid: int, marker: str) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.is_file():
        return True  # no procfs (macOS): trust the pid file
    return marker in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
