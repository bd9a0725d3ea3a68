"""One real Ray cluster for the whole test run (the ``ray_cluster`` session fixture).

Started lazily, the first time a test asks for it, and stopped at the end of the session:
a head node and a second node, one CPU each, each started by its own ``ray start --block``
process with its own temporary directory, the node address 127.0.0.1 and free ports. Only
the processes started here are stopped, by PID: SIGTERM to each ``ray start --block``
process (which stops the Ray processes it started), then SIGKILL to the process group each
was started in (a new session of its own, holding only its processes) for anything left.
``ray stop`` is never used (it stops every Ray process of the machine).

Token authentication is off on both sides (RAY_AUTH_MODE=disabled in the nodes' and the
drivers' environments: a loopback-only test cluster). Ray 2.60's gcs_server and raylet still
listen on every interface (seen with ``ss -ltnp``) although they advertise 127.0.0.1 only.

The nodes' environment also sets nncli.ray_executor.TEST_PID_DIR to ``pid_dir``: each
attempt of a point on a Ray worker then writes "start PID" and "epoch PID" lines to
``pid_dir/<point name>.pid`` (how tests/test_ray.py finds the Ray worker to kill).

Registered for every test file by tests/conftest.py (it imports the fixture).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: seconds a node may take to come up on a loaded 2-core machine
START_TIMEOUT = 90


@dataclass
class RayCluster:
    address: str  # 127.0.0.1:PORT, what --address takes
    pid_dir: Path  # where the test-only hook writes the Ray workers' PIDs
    env: dict  # the environment a driver joining the cluster needs (RAY_AUTH_MODE=disabled)
    procs: list = field(default_factory=list)  # the `ray start --block` processes started here
    dirs: list = field(default_factory=list)  # their temporary directories

    def stop(self) -> None:
        for p in reversed(self.procs):  # the second node first, then the head
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:  # whatever is left of each node's own process group (pgid = its PID)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], env: dict, tmp: Path) -> subprocess.Popen:
    """``ray start ARGS --block`` in a session of its own; returns once the node is up."""
    log = open(tmp / "ray-start.log", "wb")
    cmd = [str(Path(sys.executable).with_name("ray")), "start", *args, "--block", "--node-ip-address", "127.0.0.1",
           "--temp-dir", str(tmp), "--num-cpus", "1", "--object-store-memory", str(80 * 1024 * 1024),
           "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port())]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = (tmp / "ray-start.log").read_text(errors="replace")
        if "block forever" in text:
            return p
        if p.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"ray start {' '.join(args)} did not come up (exit {p.poll()}):\n{text[-3000:]}")


@pytest.fixture(scope="session")
def ray_cluster():
    """A running two-node Ray cluster on 127.0.0.1 (see the module docstring)."""
    pytest.importorskip("ray")
    pid_dir = Path(tempfile.mkdtemp(prefix="nncli-ray-pids-"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    node_env = dict(env, NNCLI_RAY_TEST_PIDS=str(pid_dir))
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", pid_dir, env, dirs=[pid_dir])
    try:
        for args in (["--head", "--port", str(port), "--include-dashboard", "false", "--dashboard-port", str(free_port())],
                     ["--address", cluster.address]):
            tmp = Path(tempfile.mkdtemp(prefix="nr", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
            cluster.dirs.append(tmp)
            cluster.procs.append(_start_node(args, node_env, tmp))
        yield cluster
    finally:
        cluster.stop()
