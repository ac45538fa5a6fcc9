"""Integration-test fixtures: the `testhosts` rig of real SSH hosts (tests/hosts/testhosts).

The session fixture `testhosts` brings N hosts up once per test session (runtime
systemd, N=3; override with TESTHOSTS_RUNTIME=ns|systemd and TESTHOSTS_N) and always
takes them down again, also when a test or `up` itself fails, or pytest gets SIGTERM.
Tests that take a rig up and down on their own are marked `rig_lifecycle`; they are
moved to the front of the session so they never run while the shared rig is up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "hosts" / "testhosts"
RUNTIMES = ("systemd", "ns")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs root and real test hosts (tests/hosts/testhosts)"
    )
    config.addinivalue_line(
        "markers", "rig_lifecycle: brings its own rig up and down; runs before the shared rig"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run rig_lifecycle tests first: their `down` would destroy the shared rig."""
    items.sort(key=lambda item: item.get_closest_marker("rig_lifecycle") is None)


def platform_problem(runtime: str) -> str | None:
    """Why test hosts cannot run here, or None when they can."""
    if sys.platform != "linux":
        return "testhosts need Linux namespaces"
    if os.geteuid() != 0:
        return "testhosts need root (network, mount and PID namespaces); run the tests as root"
    if runtime not in RUNTIMES:
        return f"TESTHOSTS_RUNTIME must be one of {RUNTIMES}, not {runtime!r}"
    if not SCRIPT.is_file():
        return f"{SCRIPT} is missing"
    for path in ("/proc/self/ns/net", "/proc/self/ns/pid", "/proc/self/ns/mnt"):
        if not os.path.exists(path):
            return f"kernel lacks namespaces ({path} missing)"
    for tool in ("ip", "nsenter", "unshare", "mount", "apt-get", "dpkg-query"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "kernel has no overlayfs"
    return None


def find_ansible(tool: str = "ansible") -> Path | None:
    """The ansible next to this interpreter, then the project venvs, then PATH."""
    for bindir in (
        Path(sys.executable).parent,
        REPO / ".venv" / "bin",
        Path("/tmp/probe-venv/bin"),
    ):
        if (bindir / tool).exists():
            return bindir / tool
    found = shutil.which(tool)
    return Path(found) if found else None


@dataclass
class TestHosts:
    """Handle on a running rig, as yielded by the `testhosts` fixture."""

    __test__ = False  # not a test class, despite the name

    runtime: str
    dir: Path
    hosts: list[str]
    env: dict[str, str] = field(repr=False)

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.ini"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    def addr(self, name: str) -> str:
        instance = int(self.env.get("TESTHOSTS_INSTANCE", "0") or "0")
        return f"172.30.{99 - instance}.{10 + int(name.lstrip('h'))}"

    def script(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run `tests/hosts/testhosts ARGS...` for this rig."""
        res = subprocess.run(
            [str(SCRIPT), *args], env=self.env, text=True, capture_output=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"testhosts {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}"
            )
        return res

    def exec(
        self, name: str, *cmd: str, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run CMD inside host NAME (through its namespaces, not SSH); like subprocess.run,
        a failure is only raised with check=True."""
        return self.script("exec", name, "--", *cmd, check=check, timeout=timeout)

    def ssh(
        self, name: str, *cmd: str, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run CMD on host NAME over SSH, as Ansible would reach it (check=True raises)."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=2",
            f"root@{self.addr(name)}",
            *cmd,
        ]
        res = subprocess.run(argv, text=True, capture_output=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(
                f"ssh {name} {' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}"
            )
        return res

    def ansible(
        self, pattern: str, *args: str, check: bool = False, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Ad-hoc `ansible PATTERN -i <inventory> ARGS...` (skips if ansible is missing)."""
        binary = find_ansible()
        if binary is None:
            pytest.skip("ansible is not installed (make venv)")
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1")
        res = subprocess.run(
            [str(binary), pattern, "-i", str(self.inventory), *args],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.dir,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"ansible {pattern} {' '.join(args)} failed:\n{res.stdout}{res.stderr}"
            )
        return res

    def cut(self, name: str) -> None:
        self.script("cut", name)

    def heal(self, name: str) -> None:
        self.script("heal", name)

    def crash(self, name: str) -> None:
        self.script("crash", name)

    def boot(self, name: str) -> None:
        self.script("boot", name)

    def wipe(self, name: str) -> None:
        self.script("wipe", name)

    def up(self, n: int, backup: bool = False) -> None:
        """N hosts (db h1, app h2..hN); with backup, h(N+1) in the group `backup` too."""
        self.script("up", str(n), "--runtime", self.runtime, *(["--backup"] if backup else []))
        self.hosts = [f"h{i}" for i in range(1, n + 1)]

    def down(self) -> None:
        self.script("down", timeout=120)


def rig_env(testhosts_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if testhosts_dir is not None:
        env["TESTHOSTS_DIR"] = str(testhosts_dir)
    return env


def make_rig(runtime: str, testhosts_dir: Path | None = None) -> TestHosts:
    """A TestHosts handle (nothing started yet); skips when the platform cannot run it."""
    problem = platform_problem(runtime)
    if problem:
        pytest.skip(problem)
    env = rig_env(testhosts_dir)
    instance = env.get("TESTHOSTS_INSTANCE", "0") or "0"
    default = REPO / (".testhosts" if instance == "0" else f".testhosts-{instance}")
    tdir = Path(env.get("TESTHOSTS_DIR") or default).resolve()
    rig = TestHosts(runtime=runtime, dir=tdir, hosts=[], env=env)
    prep = rig.script("prepare", "--runtime", runtime, check=False, timeout=1200)
    if prep.returncode != 0:
        pytest.skip(
            f"testhosts prepare --runtime {runtime} failed (no packages or rootfs "
            f"for the test hosts):\n{prep.stdout}{prep.stderr}"
        )
    return rig


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that pytest runs the teardown."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(f"signal {signum}")


@pytest.fixture(scope="session")
def testhosts() -> Iterator[TestHosts]:
    runtime = os.environ.get("TESTHOSTS_RUNTIME", "systemd")
    n = int(os.environ.get("TESTHOSTS_N", "3"))
    rig = make_rig(runtime)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rig.up(n)
        yield rig
    finally:
        try:
            rig.down()
        finally:
            signal.signal(signal.SIGTERM, previous)
