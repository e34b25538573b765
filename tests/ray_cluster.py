"""A real two-node Ray cluster on this machine's loopback, for the sweep tests.

Each node is a `ray start --block` process in its own process group with its own temporary folder and a
free port, so parallel test runs do not collide; stopping the cluster ends exactly those process groups.
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
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(80 * 2**20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_path_environment() -> dict[str, str]:
    """Workers import qmix from the same source tree as the tests."""
    import qmix

    source = str(Path(qmix.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source}


class LoopbackCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        self.temp = Path(tempfile.mkdtemp(prefix="qr", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.environment = source_path_environment()
        self.processes: list[subprocess.Popen] = []
        self.logs = []
        common = ["--num-cpus", str(cpus_per_node), "--object-store-memory", OBJECT_STORE,
                  "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
        self._start(["--head", "--port", str(self.port), "--include-dashboard=false",
                     "--temp-dir", str(self.temp / "ray"), *common])
        self._wait_for_nodes(1)
        for _ in range(nodes - 1):
            self._start(["--address", self.address, *common])
        self._wait_for_nodes(nodes)

    def _start(self, arguments: list[str]) -> None:
        log = open(self.temp / f"node{len(self.processes)}.log", "w")
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
        for process in reversed(self.processes):  # workers first, then the head
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for process in self.processes:
            # the node's own daemons share its process group; none must outlive the test
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in self.logs:
            log.close()
        shutil.rmtree(self.temp, ignore_errors=True)
