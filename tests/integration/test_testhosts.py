"""The test-host rig itself (tests/hosts/testhosts): lifecycle, isolation, failures.

The lifecycle tests (marked rig_lifecycle) run first, with their own TESTHOSTS_DIR and
the fast `ns` runtime; the others share the session rig of the `testhosts` fixture and
leave every host as they found it (booted, healed).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SCRIPT, TestHosts, make_rig

pytestmark = pytest.mark.integration

# Addresses that must never be reached from a host: a private one and the machine's
# gateway side of TEST-NET-1. Connects are only attempted after the host's routing
# table has been checked to reject them, so a broken rig still sends nothing out.
FORBIDDEN = ("10.255.255.1", "192.0.2.1")


# ------------------------------------------------------------------ machine snapshots
def _lines(*cmd: str) -> list[str]:
    out = subprocess.run(cmd, text=True, capture_output=True, check=True).stdout
    return sorted(re.sub(r"expires \S+", "", line).strip() for line in out.splitlines())


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return sorted(" ".join((line.split()[4], line.split(" - ")[1].split()[0])) for line in fh)


def _instance() -> int:
    return int(os.environ.get("TESTHOSTS_INSTANCE", "0") or "0")


def _markers(instance: int) -> re.Pattern[str]:
    """What names the machine-side traces of rig instance N (see tests/hosts/testhosts)."""
    tag = "" if instance == 0 else str(instance)
    table = 3099 - instance
    state = "sre-rollback-testhosts" + (f"-{instance}" if instance else "")
    return re.compile(
        rf"\btr{tag}[hv]\d|\btrb{instance}\b|lookup {table}\b|table {table}\b"
        rf"|172\.30\.{99 - instance}\.|/run/{state}/|\bsre-testhosts"
        + (f"-{instance}" if instance else "")
        + r"$"
    )


# Other instances' rigs (a developer's demo, a helper's tests) may come and go while a
# lifecycle test runs: their traces are left out of the snapshots.
FOREIGN = [_markers(n) for n in range(10) if n != _instance()]


def _foreign(line: str) -> bool:
    return any(pattern.search(line) for pattern in FOREIGN)


def _foreign_netns() -> set[str]:
    """The namespace ids (as /proc/PID/ns/net reads) of other instances' hosts."""
    found = set()
    for name in _lines("ip", "netns", "list"):
        name = name.split()[0]
        if _foreign(name):
            try:
                found.add(f"net:[{os.stat(f'/run/netns/{name}').st_ino}]")
            except OSError:
                continue
    return found


def _rig_processes() -> set[str]:
    """Live processes of this instance that look like rig leftovers (zombies are the init's
    to reap; processes in another instance's hosts are that rig's)."""
    found = set()
    foreign_netns = _foreign_netns()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if netns in foreign_netns or _foreign(cmd):
            continue
        if re.search(
            r"\btini\b|sshd|systemd-nspawn|sre-rollback-testhosts", cmd
        ) or netns != os.readlink("/proc/self/ns/net"):
            found.add(f"{pid} {cmd}")
    return found


def machine_snapshot() -> dict[str, list[str]]:
    """This instance's view of the machine: everything, minus other rig instances' traces
    (and the shared /run/netns mount point while another instance has hosts)."""
    snapshot = {
        "netns": _lines("ip", "netns", "list"),
        "links": sorted(os.listdir("/sys/class/net")),
        "rules": _lines("ip", "rule"),
        "routes": _lines("ip", "route", "show", "table", "all"),
        "mounts": _mounts(),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/sre-testhosts*")),
    }
    others = any(_foreign(name) for name in snapshot["netns"])
    snapshot = {
        key: [
            line
            for line in lines
            if not _foreign(line) and not (others and line.startswith("/run/netns "))
        ]
        for key, lines in snapshot.items()
    }
    snapshot["processes"] = sorted(_rig_processes())
    return snapshot


def _new_rig_processes(before: list[str], timeout: float = 10) -> list[str]:
    """Rig-like processes not there before (waits for the init to reap)."""
    deadline = time.monotonic() + timeout
    while (new := sorted(_rig_processes() - set(before))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return new


def _no_rig_up() -> None:
    res = subprocess.run([str(SCRIPT), "status"], text=True, capture_output=True)
    if res.returncode != 1:
        pytest.skip(f"a rig is already up; this test would take it down:\n{res.stdout}")


# ------------------------------------------------------------------ lifecycle (own rig)
@pytest.mark.rig_lifecycle
def test_up_down_leaves_machine_as_it_was(tmp_path: Path) -> None:
    rig = make_rig("ns", tmp_path / "rig")
    _no_rig_up()
    rig.down()  # safe without `up`: also the way to clear a crashed session's leftovers
    before = machine_snapshot()
    try:
        rig.up(3)
        during = machine_snapshot()
        assert during["netns"] and f"trb{_instance()}" in during["links"]
        assert any(f"lookup {3099 - _instance()}" in rule for rule in during["rules"])
        assert during["mounts"] != before["mounts"]
        assert rig.inventory.is_file()
    finally:
        rig.down()
    assert _new_rig_processes(before["processes"]) == []
    after = machine_snapshot()
    for key in before.keys() - {"processes"}:
        assert after[key] == before[key], f"{key} differ after down"
    assert not rig.inventory.exists()
    rig.down()  # idempotent
    again = machine_snapshot()
    assert {k: v for k, v in again.items() if k != "processes"} == {
        k: v for k, v in before.items() if k != "processes"
    }
    assert _new_rig_processes(before["processes"], timeout=0) == []


@pytest.mark.rig_lifecycle
def test_single_host_is_db_and_app(tmp_path: Path) -> None:
    rig = make_rig("ns", tmp_path / "rig")
    _no_rig_up()
    try:
        rig.up(1)
        groups = inventory_groups(rig.inventory)
        assert groups["db"] == ["h1"] and groups["app"] == ["h1"]
        res = rig.ansible("app", "-m", "ansible.builtin.ping")
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        rig.down()


@pytest.mark.rig_lifecycle
def test_backup_host_and_wipe(tmp_path: Path) -> None:
    """`up --backup` adds h(N+1) in `backup` only; `wipe` brings a host back empty."""
    rig = make_rig("ns", tmp_path / "rig")
    _no_rig_up()
    try:
        rig.up(1, backup=True)
        groups = inventory_groups(rig.inventory)
        assert groups["db"] == ["h1"] and groups["app"] == ["h1"]
        assert groups["backup"] == ["h2"] and "h2" not in groups["rig:children"]
        rig.exec("h1", "sh", "-c", "mkdir -p /opt/lost && echo x > /opt/lost/f", check=True)
        rig.exec("h2", "sh", "-c", "echo kept > /root/backup-marker", check=True)
        rig.wipe("h1")
        assert rig.ssh("h1", "test -e /opt/lost").returncode == 1
        assert rig.ssh("h1", "hostname", check=True).stdout.strip() == "h1"
        assert rig.ssh("h2", "cat /root/backup-marker", check=True).stdout.strip() == "kept"
    finally:
        rig.down()


# ------------------------------------------------------------------ shared rig
def inventory_groups(path: Path) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            groups[current] = []
        elif line.strip() and not line.startswith("#"):
            groups[current].append(line.split()[0])
    return groups


def test_inventory_matches_contract(testhosts: TestHosts) -> None:
    groups = inventory_groups(testhosts.inventory)
    hosts = testhosts.hosts
    assert groups["db"] == hosts[:1]
    assert groups["app"] == (hosts if len(hosts) == 1 else hosts[1:])
    assert groups["rig:children"] == ["db", "app"]
    text = testhosts.inventory.read_text()
    for name in hosts:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name} "))
        for needle in (
            f"ansible_host={testhosts.addr(name)}",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={testhosts.key}",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=2",
            "ConnectTimeout=5",
            "StrictHostKeyChecking=no",
            "ansible_python_interpreter=/usr/bin/python3",
            f"testhosts_runtime={testhosts.runtime}",
        ):
            assert needle in line, f"{needle} missing for {name}"
    link = testhosts.dir / "group_vars"
    assert link.is_symlink()
    assert (
        Path(os.readlink(link))
        == Path(__file__).resolve().parents[2] / "inventories" / "testhosts" / "group_vars"
    )


def test_ansible_ping_all_hosts(testhosts: TestHosts) -> None:
    res = testhosts.ansible("rig", "-m", "ansible.builtin.ping", "-o")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count('"ping": "pong"') == len(testhosts.hosts), res.stdout


def test_hostname_per_host(testhosts: TestHosts) -> None:
    for name in testhosts.hosts:
        assert testhosts.exec(name, "hostname").stdout.strip() == name
        assert testhosts.ssh(name, "hostname").stdout.strip() == name


def test_own_pid_namespace_and_init(testhosts: TestHosts) -> None:
    expected = "systemd" if testhosts.runtime == "systemd" else "tini"
    for name in testhosts.hosts:
        assert testhosts.ssh(name, "cat", "/proc/1/comm").stdout.strip() == expected


def test_clean_root_environment(testhosts: TestHosts) -> None:
    name = testhosts.hosts[-1]
    out = testhosts.ssh(name, "echo $PATH; command -v python3; ls -A /root").stdout
    assert "pyenv" not in out
    assert "/usr/bin/python3" in out.splitlines()[1]


def test_overlay_roots_are_separate(testhosts: TestHosts) -> None:
    first, last = testhosts.hosts[0], testhosts.hosts[-1]
    if first == last:
        pytest.skip("needs two hosts")
    testhosts.exec(first, "sh", "-c", "echo only-here > /etc/testhosts-marker", check=True)
    try:
        assert (
            testhosts.exec(last, "test", "-e", "/etc/testhosts-marker", check=False).returncode != 0
        )
        assert not Path("/etc/testhosts-marker").exists()
    finally:
        testhosts.exec(first, "rm", "-f", "/etc/testhosts-marker", check=True)


def _connect_probe(addrs: list[tuple[str, int]]) -> str:
    return (
        "import socket,time\n"
        f"for a, p in {addrs!r}:\n"
        "    s = socket.socket(); s.settimeout(3); t = time.monotonic()\n"
        "    try:\n"
        "        s.connect((a, p)); r = 'connected'\n"
        "    except OSError as e:\n"
        "        r = type(e).__name__ + ':' + str(e.errno)\n"
        "    print(a, p, r, round(time.monotonic() - t, 3))\n"
    )


def test_egress_blocked_but_rig_reachable(testhosts: TestHosts) -> None:
    listener = socket.socket()
    listener.bind(("172.30.99.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    name = testhosts.hosts[-1]
    try:
        for addr in FORBIDDEN:  # routing must refuse before any connect is tried
            res = testhosts.exec(name, "ip", "route", "get", addr, check=False)
            assert res.returncode != 0 or "unreachable" in res.stdout, res.stdout
            res = subprocess.run(
                [
                    "ip",
                    "route",
                    "get",
                    addr,
                    "from",
                    testhosts.addr(name),
                    "iif",
                    f"trb{_instance()}",
                ],
                text=True,
                capture_output=True,
            )
            assert res.returncode != 0 or re.search(r"blackhole|unreachable", res.stdout), (
                f"machine would route {addr} for a host: {res.stdout}"
            )
        targets = [(a, 80) for a in FORBIDDEN] + [("172.30.99.1", port)]
        targets += [(testhosts.addr(h), 22) for h in testhosts.hosts if h != name]
        out = testhosts.exec(name, "python3", "-c", _connect_probe(targets), check=True).stdout
    finally:
        listener.close()
    results = {
        line.split()[0] + ":" + line.split()[1]: line.split()[2:] for line in out.splitlines()
    }
    for addr in FORBIDDEN:
        verdict, seconds = results[f"{addr}:80"]
        assert verdict in ("OSError:113", "OSError:101"), out  # EHOSTUNREACH/ENETUNREACH
        assert float(seconds) < 1.0, out
    assert results[f"172.30.99.1:{port}"][0] == "connected", out
    for h in testhosts.hosts:
        if h != name:
            assert results[f"{testhosts.addr(h)}:22"][0] == "connected", out


def test_crash_and_boot_keep_files(testhosts: TestHosts) -> None:
    name = testhosts.hosts[-1]
    testhosts.exec(name, "sh", "-c", "echo kept > /root/crash-marker", check=True)
    testhosts.ssh(name, "nohup sleep 1000 >/dev/null 2>&1 &", check=True)
    try:
        testhosts.crash(name)
        status = testhosts.script("status", check=False).stdout
        assert re.search(rf"^\s+{name}\s+\S+\s+crashed", status, re.M), status
        t0 = time.monotonic()
        assert testhosts.ssh(name, "true", check=False).returncode != 0
        assert time.monotonic() - t0 < 10
        assert testhosts.exec(name, "true", check=False).returncode != 0
    finally:
        testhosts.boot(name)
    assert testhosts.ssh(name, "cat", "/root/crash-marker").stdout.strip() == "kept"
    assert "sleep 1000" not in testhosts.ssh(name, "ps -eo args").stdout
    res = testhosts.ansible(name, "-m", "ansible.builtin.ping")
    assert res.returncode == 0, res.stdout + res.stderr
    testhosts.exec(name, "rm", "-f", "/root/crash-marker", check=True)


def test_cut_and_heal(testhosts: TestHosts) -> None:
    name = testhosts.hosts[-1]
    others = [h for h in testhosts.hosts if h != name]
    # A session that is open when the cut happens must die by keep-alive, not hang.
    hanging = subprocess.Popen(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(testhosts.key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=2",
            f"root@{testhosts.addr(name)}",
            "sleep",
            "120",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    try:
        testhosts.cut(name)
        t0 = time.monotonic()
        assert testhosts.ssh(name, "true", check=False).returncode != 0
        assert time.monotonic() - t0 < 10
        assert testhosts.exec(name, "true").returncode == 0  # still up, just unreachable
        for other in others:
            assert testhosts.ssh(other, "hostname").stdout.strip() == other
        assert hanging.wait(timeout=30) != 0
        assert time.monotonic() - t0 < 25
    finally:
        hanging.kill()
        testhosts.heal(name)
    deadline = time.monotonic() + 15
    while testhosts.ssh(name, "true", check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{name} not reachable after heal"
        time.sleep(0.5)
    assert testhosts.ssh(name, "hostname").stdout.strip() == name


def test_slow_link_and_heal(testhosts: TestHosts) -> None:
    name = testhosts.hosts[-1]
    veth = f"trv{name.lstrip('h')}"
    try:
        testhosts.script("slow", name, "2mbit")
        qdisc = subprocess.run(
            ["tc", "qdisc", "show", "dev", veth], text=True, capture_output=True, check=True
        ).stdout
        assert "tbf" in qdisc
        assert testhosts.ssh(name, "true").returncode == 0
    finally:
        testhosts.heal(name)
    qdisc = subprocess.run(
        ["tc", "qdisc", "show", "dev", veth], text=True, capture_output=True, check=True
    ).stdout
    assert "tbf" not in qdisc


def test_systemd_host_runs_services(testhosts: TestHosts) -> None:
    if testhosts.runtime != "systemd":
        pytest.skip("systemd runtime only")
    name = testhosts.hosts[-1]
    state = testhosts.ssh(name, "systemctl is-system-running --wait", check=False)
    failed = testhosts.ssh(name, "systemctl --failed --no-legend --plain").stdout
    assert state.stdout.strip() == "running", failed
    assert testhosts.ssh(name, "systemctl is-active ssh").stdout.strip() == "active"
    # PostgreSQL is installed but not started at boot; it must be startable.
    try:
        testhosts.ssh(name, "systemctl start postgresql@15-main", timeout=120, check=True)
        out = testhosts.ssh(name, "runuser -u postgres -- psql -Atc 'select 1'").stdout
        assert out.strip() == "1"
    finally:
        testhosts.ssh(name, "systemctl stop postgresql@15-main", check=False)
