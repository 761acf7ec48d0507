"""Child processes of the local control plane: one process group each, logs on disk.

Every component runs in a session (and so a process group) of its own, so
stopping it signals everything it spawned. On Linux the child is also killed
when the Python process that started it dies, even by SIGKILL (``setpriv
--pdeathsig``): a killed test run leaves no orphan apiserver. That is SIGKILL,
not SIGTERM: a kube-apiserver shutting down gracefully while etcd dies beside
it can hang for minutes.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

STOP_GRACE_SECONDS = 10.0


class ComponentFailedError(RuntimeError):
    """A component exited or never became healthy."""


_LOWEST_PORT = 10000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Picked below the kernel's ephemeral range: a port from that range, free
    when picked, may be taken by the local end of any outgoing connection
    (etcd and kube-apiserver open many) before the component meant for it
    binds it.
    """
    low = _ephemeral_low()
    candidates = range(_LOWEST_PORT, low) if low > _LOWEST_PORT + 1000 else range(0)
    for port in random.sample(candidates, min(len(candidates), 50)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


def _death_signal_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.uname().sysname != "Linux":
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One component: started in its own process group, output appended to ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port  # where its health endpoint listens, if anywhere
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file: IO[bytes] = log.open("ab")
        self._log_file.write(f"--- starting: {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        full_env = dict(os.environ)
        full_env.update(env or {})
        try:
            self._proc = subprocess.Popen(
                _death_signal_prefix() + self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self._log_file.close()
            raise ComponentFailedError(f"{name}: cannot run {self.argv[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def running(self) -> bool:
        return self._proc.poll() is None

    def check_running(self) -> None:
        code = self._proc.poll()
        if code is not None:
            raise ComponentFailedError(
                f"{self.name} exited with status {code}; last lines of {self.log}:\n{tail(self.log)}"
            )

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the whole group, SIGKILL it after ``grace`` seconds. Idempotent.

        Interrupted (a second Ctrl-C), it kills the group at once and re-raises.
        """
        try:
            if self._proc.poll() is None:
                self._signal_group(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(grace)
        finally:
            # Whatever is left, the leader or children that outlived it, dies now.
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(grace)
            self._log_file.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    process: ManagedProcess | None = None,
) -> None:
    """Poll ``ready`` until true; fail early if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None:
            process.check_running()
        if ready():
            return
        if time.monotonic() > deadline:
            log_hint = f"; last lines of {process.log}:\n{tail(process.log)}" if process else ""
            raise ComponentFailedError(
                f"timed out after {timeout:.0f}s waiting for {what}{log_hint}"
            )
        time.sleep(interval)


class Started:
    """A context manager for things with ``start()`` and ``stop()``: started on
    entry, stopped on exit, whatever happened inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
