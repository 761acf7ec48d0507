from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from scheduler_extender.devcluster.processes import (
    ComponentFailedError,
    ManagedProcess,
    free_port,
    wait_until,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {child_pid}; trap '' TERM; wait"
    process = ManagedProcess("group", ["sh", "-c", script], tmp_path / "group.log")
    wait_until("the child", child_pid.exists, timeout=10)
    grandchild = int(child_pid.read_text())
    process.stop(grace=1.0)  # the shell ignores SIGTERM: it takes the SIGKILL
    assert not process.running()
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
    process.stop()  # idempotent


def test_output_goes_to_the_log_and_exits_are_reported(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "fail.log"
    process = ManagedProcess("fail", ["sh", "-c", "echo something broke; exit 3"], log)
    with pytest.raises(ComponentFailedError, match="exited with status 3") as raised:
        wait_until("never", lambda: False, timeout=10, process=process)
    assert "something broke" in str(raised.value)
    process.stop()


def test_wait_until_times_out_with_the_subject(tmp_path: Path) -> None:
    with pytest.raises(ComponentFailedError, match="waiting for the moon"):
        wait_until("the moon", lambda: False, timeout=0.2, interval=0.05)


def test_free_port_is_free_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_free_ports_are_outside_the_ephemeral_range_outgoing_connections_use() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(free_port() < low for _ in range(20))
