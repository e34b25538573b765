"""A real two-node Ray cluster on this machine's loopback, for the sweep tests.

Each node is a `ray start --block` process in its own process group with its own temporary folder and a
free port, so parallel test runs do not collide; stopping the cluster ends exactly those process groups.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(80 * 2**20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_path_environment(auth_token: str | None = None) -> dict[str, str]:
    """Workers import qmix from the same source tree as the tests. A private cluster on the loopback needs
    no auth token unless the test is about the token."""
    import qmix

    source = str(Path(qmix.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": auth_token} if auth_token else {"RAY_AUTH_MODE": "disabled"}
    return {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source, **auth}


class LoopbackCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, auth_token: str | None = None):
        self.temp = Path(tempfile.mkdtemp(prefix="qr", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.environment = source_path_environment(auth_token)
        self.processes: list[subprocess.Popen] = []
        self.logs = []
        try:
            self._start_nodes(nodes, cpus_per_node)
        except BaseException:
            self.stop()
            raise

    def _start_nodes(self, nodes: int, cpus_per_node: int) -> None:
        common = ["--num-cpus", str(cpus_per_node), "--object-store-memory", OBJECT_STORE,
                  "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
        self._start(["--head", "--port", str(self.port), "--include-dashboard=false",
                     "--temp-dir", str(self.temp / "ray"), *common])
        self._wait_for_nodes(1)
        for _ in range(nodes - 1):
            self._start(["--address", self.address, *common])
        self._wait_for_nodes(nodes)

    def _start(self, arguments: list[str]) -> None:
        log = open(self.temp / f"node{len(self.processes)}.log", "w")  # noqa: SIM115 (closed in stop())
        self.logs.append(log)
        self.processes.append(subprocess.Popen([RAY, "start", *arguments], stdout=log, stderr=subprocess.STDOUT,
                                               env=self.environment, start_new_session=True))

    def _wait_for_nodes(self, count: int, timeout: float = 120.0) -> None:
        probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.time() + timeout
        while time.time() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Ray node exited early; see {self.temp}")
            done = subprocess.run([sys.executable, "-c", probe, self.address], capture_output=True, text=True,
                                  env=self.environment, timeout=60)
            lines = done.stdout.strip().splitlines()
            if done.returncode == 0 and lines and int(lines[-1]) >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the cluster did not reach {count} nodes in {timeout:.0f} s; see {self.temp}")

    def stop(self) -> None:
        """End every process of each node: `ray start` and the daemons it started share its process group."""
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            for process in reversed(self.processes):  # workers first, then the head
                _signal_group(process.pid, signal_number)
            deadline = time.time() + (10 if signal_number == signal.SIGTERM else 30)
            while time.time() < deadline and any(p.poll() is None or _group_alive(p.pid) for p in self.processes):
                time.sleep(0.5)  # poll() reaps `ray start`; its daemons are reaped by init once it is gone
        for process in self.processes:
            process.wait(timeout=10)
        for log in self.logs:
            log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


def _signal_group(group: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal_number)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
