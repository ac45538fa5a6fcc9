"""Helpers for integration tests: run playbooks against the test hosts, look at hosts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO, VENV_BIN

LOADGEN = REPO / "roles" / "demo_app" / "files" / "tools" / "loadgen.py"
APP_ROOT = "/opt/demo-app"


@dataclass
class Run:
    rc: int
    out: str
    seconds: float
    record: dict[str, Any]

    def host_results(self) -> dict[str, Any]:
        return {h: v.get("result", {}) for h, v in self.record.get("hosts", {}).items()}


def playbook(
    inventory: str | Path, name: str, *args: str, records: Path | None = None, timeout: int = 600
) -> Run:
    """ansible-playbook from the repo root (so ansible.cfg applies); returns rc, output,
    duration and the run record the collection's callback wrote."""
    record_dir = records or Path(os.environ.get("TMPDIR", "/tmp")) / "sre-rollback-test-records"
    run_id = f"test-{time.time_ns()}"
    env = dict(
        os.environ,
        SRE_ROLLBACK_RECORD_DIR=str(record_dir),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
    )
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            f"playbooks/{name}",
            "-e",
            f"rollback_run_id={run_id}",
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    record_file = record_dir / f"{run_id}.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    return Run(proc.returncode, proc.stdout + proc.stderr, seconds, record)


def prepared(testhosts: Any) -> Any:
    """The rig with the demo application prepared on it (playbooks/demo-app.yml)."""
    run = playbook(testhosts.inventory, "demo-app.yml")
    assert run.rc == 0, run.out[-4000:]
    return testhosts


def app_hosts(rig: Any) -> list[str]:
    """The rig's application hosts (h1 is the database host)."""
    return [h for h in rig.hosts if h != "h1"]


def deploy(rig: Any, tag: str, *extra: str) -> Run:
    """Deploy ``tag`` on the app hosts (playbooks/deploy.yml); it must succeed."""
    run = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={tag}", *extra)
    assert run.rc == 0, run.out[-4000:]
    return run


def lock_free(rig: Any, host: str) -> bool:
    """No rollback lock is held on ``host``."""
    return on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free") == "free"


def on(rig: Any, host: str, command: str, check: bool = True) -> str:
    """Run a shell command on a test host; its stdout."""
    proc = rig.exec(host, "sh", "-c", command)
    out = proc.stdout if hasattr(proc, "stdout") else str(proc)
    if check and getattr(proc, "returncode", 0) != 0:
        raise AssertionError(f"{host}: {command!r} failed: {out} {getattr(proc, 'stderr', '')}")
    return str(out).strip()


def current(rig: Any, host: str) -> str:
    return on(rig, host, f"readlink {APP_ROOT}/current")


def release_log(rig: Any, host: str) -> list[dict[str, Any]]:
    text = on(rig, host, f"cat {APP_ROOT}/releases.log || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def health(rig: Any, host: str) -> tuple[int, dict[str, Any]]:
    out = on(
        rig,
        host,
        "curl -s -o /tmp/h.json -w '%{http_code}' http://127.0.0.1:8080/health; "
        "echo; cat /tmp/h.json",
        check=False,
    )
    code, _, body = out.partition("\n")
    try:
        return int(code or 0), json.loads(body or "{}")
    except ValueError:
        return int(code or 0), {"raw": body}


def load(urls: list[str], requests: int = 200, path: str = "/checkout") -> dict[str, Any]:
    """Send bounded traffic with the demo's load generator; its JSON summary."""
    proc = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            *urls,
            "--requests",
            str(requests),
            "--concurrency",
            "8",
            "--path",
            path,
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return dict(json.loads(proc.stdout))


def wrapper_args(rig: Any, artifacts: Path) -> list[str]:
    """What every `rollbackctl` command takes on the rig: its inventory, this project, the
    artifacts folder of the test, and no messages sent."""
    return [
        "-i",
        str(rig.inventory),
        "--project-dir",
        str(REPO),
        "--artifacts",
        str(artifacts),
        "--no-notify",
    ]


def tag_patched_release(
    rig: Any, host: str, tag: str, base: str, patch: str, message: str, date: str
) -> None:
    """Tag ``tag`` in the host's mirror: release ``base`` with ``patch`` (Python run with
    the path of the release's ``demo_app/server.py`` as ``path``) applied and committed at
    ``date``, so that every host makes the same commit id."""
    script = f"""
set -e
dir=$(mktemp -d)
git clone -q /srv/git/demo-app.git "$dir"
cd "$dir"
git -c advice.detachedHead=false checkout -q {base}
file=$(git ls-files | grep 'demo_app/server.py$')
python3 - "$file" <<'PY'
import sys
path = sys.argv[1]
{patch}
PY
export GIT_AUTHOR_DATE={date} GIT_COMMITTER_DATE={date}
git -c user.name=test -c user.email=test@demo-app.invalid commit -qam {shlex.quote(message)}
git tag -f {tag} >/dev/null
git push -q -f origin {tag}
rm -rf "$dir"
"""
    on(rig, host, script)
