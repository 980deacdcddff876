"""`make compose-check`: docker-compose.yaml run as a user runs it, with a PASS/FAIL line per check.

    python3 compose-check/check.py [--keep-images] [--keep-stack] [--repo DIR]

Needs a running Docker engine and Compose (v2's `docker compose`, else v1's
`docker-compose`); as root, debootstrap too where an image must be stood in for. It

1. clones the repository's committed HEAD into a private temporary folder (`mktemp -d`: the
   user's own checkout, its .env and any stack of theirs are never touched);
2. gets the images the file names: pulled where a registry answers, otherwise built from the
   stand-ins in compose-check/standins/ (Debian bookworm from debootstrap, then postgres,
   redis, apache/airflow, prometheus and a StatsD sink for statsd-exporter; docs/installing.md
   lists how each differs from the real image); Grafana has no stand-in;
3. follows docs/installing.md: `cp .env.example .env`, the image built (`pip check`), the
   placeholder keys refused, then generated keys, `--profile demo up -d`, and checks the
   stack: customers, runs, the REST API, the sync page, a worker killed during an export,
   `down`/`up`, the read-only logins, what listens, the monitoring profile,
   `--scale airflow-worker=2`, `down -v` then a clean `up`, `git status`;
4. always ends with `down -v` and removes every container, network and volume of its compose
   project, the images it built or pulled (unless --keep-images) and the clone.

Exit status 1 if any check fails or the check is interrupted. Only the standard library: it runs
before any install.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
ROOTFS = "zuora-compose-check/rootfs:bookworm"  # debootstrap's bookworm, imported
BASE = "zuora-compose-check/debian:bookworm"  # the stand-ins' base (standins/debian)
STANDIN_LABEL = "org.zuora-compose-check.standin"  # its value: a hash of what built it
PROJECT_IMAGE = "zuora-workflow-sync:compose-check"  # AIRFLOW_IMAGE_NAME in the check's .env
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# the services a stand-in is built for, by the image the compose file names
STANDIN_OF_SERVICE = {
    "postgres": "postgres",
    "redis": "redis",
    "prometheus": "prometheus",
    "statsd-exporter": "statsd-exporter",
}
PUBLISHED = {8080: "0.0.0.0", 5433: "127.0.0.1", 9090: "127.0.0.1", 9102: "127.0.0.1", 3000: "127.0.0.1"}
WORKDIR_LABEL = "com.docker.compose.project.working_dir"  # the clone a container was started from
VOLUMES_FILE = "volumes"  # in the check's workdir: the anonymous volumes its containers had
PROJECT_NAME = re.compile(r"zcc[0-9a-f]{8}")  # the compose project of a check: "zcc" + 4 random bytes
DAG = "zuora_workflow_sync"
EXPORT_TASKS = ("customer_sync.export_workflows", "sync_customers")  # the two shapes' exporting tasks
SIM = "https://zuora-simulator:8090"
SIM_CA = "/opt/airflow/config/demo-tls/ca.pem"
UP_TIMEOUT = 900  # seconds for `up -d` and every container healthy (2 cores, cold caches)
RUN_TIMEOUT = 900  # a sync run, a killed worker's retry included (heartbeat timeout 120 s + retry 60 s)


class Failed(Exception):
    """A check did not hold; the message says what was seen."""


class Skipped(Exception):
    """A check that cannot run on this machine; the message says why."""


def log(message: str) -> None:
    print(message, flush=True)


def run(
    argv: list[str], *, timeout: float = 600, check: bool = True, **kwargs
) -> subprocess.CompletedProcess:
    """A command, its output captured as text; a non-zero exit (with check) is Failed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"`{' '.join(argv[:6])}` did not finish within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        raise Failed(f"`{' '.join(argv[:8])}` exited {done.returncode}: {tail(done.stdout + done.stderr)}")
    return done


def tail(text: str, lines: int = 12) -> str:
    return "\n    ".join(["", *text.strip().splitlines()[-lines:]])


def wait_for(what: str, probe: Callable[[], object], timeout: float, interval: float = 2.0):
    """probe() until it returns something true (returned), else Failed after timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (Failed, OSError) as exc:  # OSError: a service not answering yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise Failed(f"{what}: not within {timeout:.0f} s (last: {last})")


# --- the report ------------------------------------------------------------------------------


class Report:
    """One line per check: PASS/FAIL/SKIP, seconds, name, what was seen."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, str]] = []
        self.blocked_by: str | None = None
        self.started = time.monotonic()

    def check(self, name: str, body: Callable[[], str | None], *, gate: bool = False) -> bool:
        if self.blocked_by:
            self._row("SKIP", 0.0, name, f"after the FAIL of: {self.blocked_by}")
            return False
        start = time.monotonic()
        try:
            detail = body() or ""
            status = "PASS"
        except Failed as exc:
            detail, status = str(exc), "FAIL"
        except Skipped as exc:
            detail, status = str(exc), "SKIP"
        except Exception as exc:  # a bug or an unexpected answer: still a FAIL line, then go on
            detail, status = f"{type(exc).__name__}: {exc}", "FAIL"
        self._row(status, time.monotonic() - start, name, detail)
        if status == "FAIL" and gate:
            self.blocked_by = name
        return status == "PASS"

    def _row(self, status: str, seconds: float, name: str, detail: str) -> None:
        self.rows.append((status, seconds, name, detail))
        log(f"{status}  {seconds:6.1f} s  {name}" + (f": {detail}" if detail else ""))

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, *_ in self.rows)

    def summary(self) -> str:
        counts = Counter(status for status, *_ in self.rows)
        total = time.monotonic() - self.started
        return (
            f"compose-check: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP "
            f"in {total / 60:.1f} min"
        )


# --- images ----------------------------------------------------------------------------------


class Images:
    """The images the compose file names: present, pulled, or a stand-in built here."""

    def __init__(self, workdir: Path, pull_timeout: float):
        self.workdir, self.pull_timeout = workdir, pull_timeout
        self.added: list[str] = []  # pulled or built by this run (removed at the end)
        self.pulled: set[str] = set()
        self.sources: dict[str, str] = {}  # image -> "real" | "stand-in"

    def exists(self, image: str) -> dict | None:
        done = run(["docker", "image", "inspect", image], check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    def pull(self, image: str) -> bool:
        try:
            return (
                run(["docker", "pull", "-q", image], timeout=self.pull_timeout, check=False).returncode == 0
            )
        except Failed:  # timed out
            return False

    def provide(self, image: str, standin: str | None, extra: dict[str, Path] | None = None) -> str:
        """Make `image` available; says where it came from."""
        found = self.exists(image)
        digest = self.standin_hash(standin, extra) if standin else None
        if found and STANDIN_LABEL not in (found["Config"].get("Labels") or {}):
            self.sources[image] = "real"
            return "present (the real image)"
        if found and (found["Config"]["Labels"] or {}).get(STANDIN_LABEL) == digest:
            self.sources[image] = "stand-in"
            self.added.append(image)
            return "stand-in, kept from an earlier run (--keep-images)"
        if image in self.pulled:
            self.sources[image] = "real"
            return "pulled"
        if standin is None:
            self.sources[image] = "none"
            raise Failed("cannot be pulled and has no stand-in")
        self.build_standin(image, standin, digest or "", extra or {})
        self.sources[image] = "stand-in"
        return f"no registry: stand-in built from compose-check/standins/{standin}"

    def standin_hash(self, standin: str, extra: dict[str, Path] | None) -> str:
        digest = hashlib.sha256()
        files = sorted((STANDINS / standin).iterdir()) + [extra[name] for name in sorted(extra or {})]
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        if standin != "debian":
            base = self.exists(BASE)
            digest.update((base or {}).get("Id", "").encode())
        return digest.hexdigest()[:16]

    def build_standin(self, image: str, standin: str, digest: str, extra: dict[str, Path]) -> None:
        context = self.workdir / f"context-{standin}"
        shutil.copytree(STANDINS / standin, context)
        for name, source in extra.items():
            shutil.copy(source, context / name)
        argv = ["docker", "build", "-q", "-t", image, "--label", f"{STANDIN_LABEL}={digest}"]
        run([*argv, "--build-arg", f"BASE={BASE}", str(context)], timeout=1800)
        self.added.append(image)

    def base(self) -> str:
        """Debian bookworm: debootstrap's minbase imported, then standins/debian on top."""
        ca = self.workdir / "host-ca.crt"
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
        digest = self.standin_hash("debian", {"host-ca.crt": ca})
        found = self.exists(BASE)
        if found and (found["Config"]["Labels"] or {}).get(STANDIN_LABEL) == digest:
            self.added += [ROOTFS, BASE] if self.exists(ROOTFS) else [BASE]
            return "kept from an earlier run (--keep-images)"
        said = []
        if self.exists(ROOTFS):
            self.added.append(ROOTFS)
        else:
            if not shutil.which("debootstrap"):
                raise Failed("debootstrap is missing: apt-get install -y debootstrap")
            rootfs = self.workdir / "rootfs"
            run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR], timeout=1800)
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / leftover).glob("*"):
                    if item.is_file():
                        item.unlink()
            with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
                run(
                    ["docker", "import", "--change", f"LABEL {STANDIN_LABEL}=rootfs", "-", ROOTFS],
                    stdin=tar.stdout,
                    timeout=600,
                )
            shutil.rmtree(rootfs)
            self.added.append(ROOTFS)
            said.append("debootstrap --variant=minbase bookworm, docker import")
        self.build_standin(BASE, "debian", digest, {"host-ca.crt": ca})
        return "; ".join([*said, "built from compose-check/standins/debian"])

    def remove(self) -> list[str]:
        left = []
        for image in reversed(self.added):
            if run(["docker", "image", "rm", image], check=False, timeout=300).returncode != 0:
                left.append(image)
        return left


# --- the stack -------------------------------------------------------------------------------


class Stack:
    """The compose project in the clone: compose commands, its containers, its databases."""

    def __init__(self, clone: Path, project: str):
        self.clone, self.project = clone, project
        self.compose_cmd = self.find_compose()
        # Compose reads the shell's variables before .env: drop every variable the file reads
        # (and COMPOSE_*), so .env alone decides, as in a user's fresh shell.
        read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (clone / "docker-compose.yaml").read_text()))
        self.env = {k: v for k, v in os.environ.items() if k not in read and not k.startswith("COMPOSE_")}
        self.volumes: set[str] = set()  # every volume a container of the project mounted

    def note_volumes(self) -> None:
        """Remember the volumes of the project's containers: an image's anonymous VOLUME (redis's
        /data) has no project label, and `down` without -v leaves it behind."""
        for container in self.containers():
            mounts = self.inspect(container).get("Mounts") or []
            self.volumes |= {m["Name"] for m in mounts if m.get("Type") == "volume"}
        (self.clone.parent / VOLUMES_FILE).write_text("".join(f"{name}\n" for name in sorted(self.volumes)))

    @staticmethod
    def find_compose() -> list[str]:
        if run(["docker", "compose", "version"], check=False).returncode == 0:
            return ["docker", "compose"]
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        raise Failed("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")

    def compose(self, *args: str, profiles: tuple[str, ...] = (), timeout: float = UP_TIMEOUT, check=True):
        if args[:1] == ("down",):
            self.note_volumes()
        flags = [f"--profile={profile}" for profile in profiles]
        argv = [*self.compose_cmd, "-p", self.project, *flags, *args]
        return run(argv, cwd=self.clone, env=self.env, timeout=timeout, check=check)

    def containers(self, service: str | None = None, running_only: bool = False) -> list[str]:
        argv = [
            "docker",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
        ]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        if not running_only:
            argv.append("-a")
        return run(argv).stdout.split()

    def inspect(self, container: str) -> dict:
        return json.loads(run(["docker", "inspect", container]).stdout)[0]

    def container(self, service: str) -> str:
        found = self.containers(service, running_only=True)
        if not found:
            raise Failed(f"no running container of {service}")
        return found[0]

    def logs(self, service: str, lines: int = 15) -> str:
        done = self.compose("logs", "--no-color", "--tail", str(lines), service, check=False, timeout=120)
        return tail(done.stdout + done.stderr, lines)

    def up(self, *extra: str, profiles: tuple[str, ...] = ("demo",), services: tuple[str, ...] = ()) -> float:
        """`up -d`, then every container of the project healthy (or a one-shot done): seconds."""
        start = time.monotonic()
        done = self.compose("up", "-d", *extra, *services, profiles=profiles, check=False)
        if done.returncode != 0:
            raise Failed(f"`up -d` exited {done.returncode}: {tail(done.stdout + done.stderr)}")
        self.wait_ready(UP_TIMEOUT - (time.monotonic() - start))
        return time.monotonic() - start

    def states(self) -> dict[str, list[str]]:
        """service -> the state of each of its containers: ready, waiting, or failed: why."""
        found: dict[str, list[str]] = {}
        for container in self.containers():
            info = self.inspect(container)
            service = info["Config"]["Labels"]["com.docker.compose.service"]
            state = info["State"]
            one_shot = info["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
            if one_shot:
                if state["Status"] == "exited":
                    status = "ready" if state["ExitCode"] == 0 else f"failed: exited {state['ExitCode']}"
                else:
                    status = "waiting"
            elif state.get("Health"):
                status = "ready" if state["Health"]["Status"] == "healthy" else "waiting"
            else:
                status = "ready" if state["Status"] == "running" else "waiting"
            found.setdefault(service, []).append(status)
        return found

    def wait_ready(self, timeout: float) -> None:
        """Every container ready; a one-shot that failed ends the wait at once, with its log."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            for service, seen in states.items():
                failed = [state for state in seen if state.startswith("failed")]
                if failed:
                    raise Failed(f"{service} {failed[0]}: {self.logs(service)}")
            waiting = sorted(service for service, seen in states.items() if "waiting" in seen)
            if states and not waiting:
                return
            if time.monotonic() > deadline:
                raise Failed(f"not healthy within {timeout:.0f} s: {waiting}")
            time.sleep(3)

    # the warehouse, through psql in its container
    def sql(self, query: str, login: str | None = None, **variables: str) -> list[list[str]]:
        """Rows of a query (psql variables :'name' from keyword arguments)."""
        target = ["-U", "warehouse", "-d", "warehouse"]
        if login:  # over TCP with its password (compose's are the login's name), as Grafana connects
            target = [f"postgresql://{login}:{login}@127.0.0.1:5432/warehouse"]
        argv = ["docker", "exec", "-i", self.container("warehouse"), "psql", "-X", "-q", "-At", "-F", "\t"]
        argv += ["-v", "ON_ERROR_STOP=1", *target]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        done = run(argv, input=query, check=False, timeout=120)
        if done.returncode != 0:
            raise Failed(f"psql: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def in_simulator(self, code: str) -> str:
        argv = [
            "docker",
            "exec",
            "-i",
            "-w",
            "/opt/airflow",
            self.container("zuora-simulator"),
            "python",
            "-",
        ]
        return run(argv, input=code, timeout=120).stdout.strip()

    def export_calls(self) -> int:
        """The export calls the simulator has answered (or is answering), all tenants."""
        code = (
            "from zuora_simulator.client import AdminClient\n"
            f"admin = AdminClient({SIM!r}, ca_bundle={SIM_CA!r})\n"
            "print(admin.stats()['total']['requests'].get('export', 0))\n"
        )
        return int(self.in_simulator(code))

    def set_latency(self, ms: int) -> None:
        self.in_simulator(
            "from zuora_simulator.client import AdminClient\n"
            f"admin = AdminClient({SIM!r}, ca_bundle={SIM_CA!r})\n"
            f"for tenant in admin.tenants(): admin.update_tenant(tenant['tenant_id'], latency_ms={ms})\n"
        )

    # Airflow's REST API, as a user logged in as admin
    def api(self, method: str, path: str, body: dict | None = None, token: str | None = "admin"):
        if token == "admin":
            token = self.token()
        request = urllib.request.Request(
            f"http://127.0.0.1:8080{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                raw = answer.read()
                return answer.status, (
                    json.loads(raw)
                    if raw and "json" in answer.headers.get("Content-Type", "")
                    else raw.decode()
                )
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def token(self) -> str:
        passwords = json.loads((self.clone / "config/simple_auth_manager_passwords.json").read_text())
        status, answer = self.api(
            "POST", "/auth/token", {"username": "admin", "password": passwords["admin"]}, token=None
        )
        if status >= 300:
            raise Failed(f"POST /auth/token: {status} {str(answer)[:200]}")
        return answer["access_token"]

    def rest(self, method: str, path: str, body: dict | None = None):
        status, answer = self.api(method, f"/api/v2{path}", body)
        if status >= 300:
            raise Failed(f"{method} /api/v2{path}: {status} {str(answer)[:300]}")
        return answer

    def trigger(self, conf: dict) -> str:
        """A run of the sync DAG, unpaused first (a paused DAG's triggered run stays queued)."""
        self.rest("PATCH", f"/dags/{DAG}?update_mask=is_paused", {"is_paused": False})
        return self.rest("POST", f"/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def wait_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        path = f"/dags/{DAG}/dagRuns/{urllib.request.quote(run_id, safe='')}"
        return wait_for(
            f"run {run_id}",
            lambda: (state := self.rest("GET", path)["state"]) in ("success", "failed") and state,
            timeout,
            interval=3,
        )

    def task_instances(self, run_id: str) -> list[dict]:
        path = f"/dags/{DAG}/dagRuns/{urllib.request.quote(run_id, safe='')}/taskInstances?limit=1000"
        return self.rest("GET", path)["task_instances"]

    def synced(self, run_id: str) -> str:
        """Every enabled customer of a run synced: status success, listed = stored + dead-lettered."""
        rows = self.sql(
            "SELECT customer_id, status, listed, stored, dead_lettered FROM zuora.sync_runs"
            " WHERE run_id = :'run_id' ORDER BY 1",
            run_id=run_id,
        )
        customers = {row[0] for row in self.sql("SELECT customer_id FROM zuora.customers WHERE enabled")}
        bad = [row for row in rows if row[1] != "success" or int(row[2]) != int(row[3]) + int(row[4])]
        if {row[0] for row in rows} != customers or bad or not rows:
            raise Failed(f"run {run_id}: sync_runs {rows} (customers {sorted(customers)})")
        listed, stored, dead = (sum(int(row[i]) for row in rows) for i in (2, 3, 4))
        return f"{len(rows)} customers, listed {listed} = stored {stored} + dead-lettered {dead}"

    def hostnames(self, service: str) -> dict[str, str]:
        """Container hostname (what Airflow records) -> container id, for a service."""
        return {self.inspect(c)["Config"]["Hostname"]: c for c in self.containers(service, running_only=True)}

    def cleanup(self) -> list[str]:
        """`down -v` with every profile, then anything left with the project's label."""
        profiles = ("demo", "monitoring", "debug", "flower")
        self.compose("down", "-v", "--remove-orphans", profiles=profiles, check=False, timeout=600)
        return remove_project(self.project, self.volumes)


# --- the checks ------------------------------------------------------------------------------


def labelled(kind: str, project: str | None = None, show: str | None = None) -> list[str]:
    """`docker <kind> ls` of what carries a compose project's label (any project's if None):
    ids, or the `--format` given."""
    label = "com.docker.compose.project" + (f"={project}" if project else "")
    argv = ["docker", kind, "ls", *(["-a"] if kind == "container" else []), "--filter", f"label={label}"]
    return run([*argv, *(["--format", show] if show else ["-q"])], check=False).stdout.split()


def remove_project(project: str, volumes: set[str]) -> list[str]:
    """Every container, network and volume with the project's label, then `volumes` (the
    anonymous ones its containers had): what was removed."""
    removed = []
    for kind in ("container", "network", "volume"):
        for item in labelled(kind, project):
            run(["docker", kind, "rm", *(["-f"] if kind == "container" else []), item], check=False)
            removed.append(f"{kind} {item[:12]}")
    for volume in sorted(volumes):
        if run(["docker", "volume", "rm", volume], check=False).returncode == 0:
            removed.append(f"anonymous volume {volume[:12]}")
    return removed


def earlier_projects() -> set[str]:
    """Compose projects of checks that ended without their cleanup (killed): named as a check
    names its project, and no running check holds them (its workdir's check.pid)."""
    show = '{{.Label "com.docker.compose.project"}}'
    projects = {name for kind in ("container", "network", "volume") for name in labelled(kind, show=show)}
    running = set()
    for pidfile in Path(tempfile.gettempdir()).glob("compose-check-*/check.pid"):
        project, _, pid = pidfile.read_text().partition(" ")
        if Path(f"/proc/{pid.strip()}").exists():
            running.add(project)
    return {name for name in projects if PROJECT_NAME.fullmatch(name)} - running


def fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def set_env_lines(path: Path, values: dict[str, str]) -> None:
    """Replace `NAME=...` lines of .env (or append them), as a user edits the file."""
    lines = path.read_text().splitlines()
    for name, value in values.items():
        line = f"{name}='{value}'"
        matches = [i for i, text in enumerate(lines) if re.match(rf"^{re.escape(name)}=", text)]
        if matches:
            lines[matches[0]] = line
        else:
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")


class Checks:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args, self.workdir = args, workdir
        self.report = Report()
        self.clone = workdir / "zuora-workflow-sync"
        self.project = "zcc" + secrets.token_hex(4)
        (workdir / "check.pid").write_text(f"{self.project} {os.getpid()}")  # see earlier_projects
        self.images: Images | None = None
        self.stack: Stack | None = None
        self.image_name = PROJECT_IMAGE
        self.expected: list[str] = []  # the demo customer ids

    # 1. the clone and the images
    def clone_repo(self) -> str:
        repo = Path(run(["git", "-C", str(self.args.repo), "rev-parse", "--show-toplevel"]).stdout.strip())
        dirty = run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]).stdout
        run(["git", "clone", "--quiet", str(repo), str(self.clone)], timeout=300)
        head = run(
            ["git", "-C", str(self.clone), "log", "-1", "--format=%h %cd", "--date=iso"]
        ).stdout.strip()
        self.stack = Stack(self.clone, self.project)
        note = " (uncommitted changes of the checkout are not part of it)" if dirty else ""
        compose = " ".join(self.stack.compose_cmd)
        version = run([*self.stack.compose_cmd, "version", "--short"], check=False).stdout.strip()
        return f"{head} into {self.clone}{note}; project {self.project}; {compose} {version}"

    def earlier_runs(self) -> str:
        """What an earlier check left when it was killed before its cleanup (SIGKILL, a lost
        machine) is removed: its stack would hold the ports, its volumes the old state."""
        removed = []
        for project in sorted(earlier_projects()):
            containers = [
                json.loads(run(["docker", "inspect", c]).stdout)[0] for c in labelled("container", project)
            ]
            volumes = {
                m["Name"] for c in containers for m in c.get("Mounts") or [] if m.get("Type") == "volume"
            }
            workdirs = {Path(c["Config"]["Labels"].get(WORKDIR_LABEL, "/")).parent for c in containers}
            workdirs = {workdir for workdir in workdirs if workdir.name.startswith("compose-check-")}
            for workdir in workdirs:  # the anonymous volumes of containers gone since (`down`, `up`)
                noted = workdir / VOLUMES_FILE
                volumes |= set(noted.read_text().split()) if noted.exists() else set()
            left = remove_project(project, volumes)
            for workdir in workdirs:
                shutil.rmtree(workdir, ignore_errors=True)
            kinds = Counter(item.rpartition(" ")[0] for item in left)
            removed.append(f"{project}: " + ", ".join(f"{n} {kind}(s)" for kind, n in kinds.items()))
        return f"removed what a killed check left: {removed}" if removed else "none"

    def ports_free(self) -> str:
        busy = []
        for port, host in PUBLISHED.items():
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError:
                    busy.append(f"{host}:{port}")
        if busy:
            raise Failed(f"in use on this machine, the stack publishes them: {busy}")
        return ", ".join(f"{host}:{port}" for port, host in PUBLISHED.items())

    def compose_images(self) -> dict[str, str]:
        text = (self.clone / "docker-compose.yaml").read_text()
        images = {}
        for service in STANDIN_OF_SERVICE:
            block = re.search(rf"^  {re.escape(service)}:\n(?:    .*\n|\s*\n)*?    image: (\S+)", text, re.M)
            if not block:
                raise Failed(f"docker-compose.yaml: no image for {service}")
            images[service] = block.group(1)
        grafana = re.search(r"^  grafana:\n(?:    .*\n)*?    image: (\S+)", text, re.M)
        images["grafana"] = grafana.group(1) if grafana else ""
        return images

    def base_image(self) -> str:
        """Pull what is missing; where a pull fails (or a stand-in of an earlier run is here),
        the stand-ins' base is needed."""
        self.images = Images(self.workdir, self.args.pull_timeout)
        images = self.compose_images()
        needed = [self.airflow_base(), *(images[s] for s in STANDIN_OF_SERVICE)]
        missing = [image for image in [*needed, images["grafana"]] if image and not self.images.exists(image)]
        for image in missing:
            if self.images.pull(image):
                self.images.pulled.add(image)
                self.images.added.append(image)
        standins = [
            image
            for image in needed
            if (image in missing and image not in self.images.pulled)
            or STANDIN_LABEL in ((self.images.exists(image) or {}).get("Config", {}).get("Labels") or {})
        ]
        pulled = f"{len(self.images.pulled)} of {len(missing)} missing image(s) pulled"
        if not standins:
            return f"not needed: {pulled}, the others here"
        return f"{pulled}; stand-ins for {len(standins)}; " + self.images.base()

    def airflow_base(self) -> str:
        froms = re.findall(r"^FROM\s+(\S+)", (self.clone / "Dockerfile").read_text(), re.M)
        return froms[0]

    def image_checks(self) -> None:
        images = self.compose_images()
        lock = self.clone / "requirements-lock.txt"
        wanted = [(self.airflow_base(), "airflow", {"constraints.txt": lock})]
        wanted += [(images[s], STANDIN_OF_SERVICE[s], None) for s in STANDIN_OF_SERVICE]
        for image, standin, extra in wanted:
            self.report.check(
                f"image {image}", lambda i=image, s=standin, e=extra: self.images.provide(i, s, e), gate=True
            )
        self.report.check(f"image {images['grafana']}", lambda: self.grafana_image(images["grafana"]))

    def grafana_image(self, image: str) -> str:
        try:
            return self.images.provide(image, None)
        except Failed as exc:
            raise Skipped(
                "cannot be pulled, and no Grafana binary is in any reachable registry: Grafana is not "
                "started; its files and its entrypoint are checked instead"
            ) from exc

    # 2. what a user does first
    def copy_env(self) -> str:
        shutil.copy(self.clone / ".env.example", self.clone / ".env")
        self.stack.compose("config", "-q", timeout=120)
        self.stack.compose("config", "-q", profiles=("demo", "monitoring"), timeout=120)
        return "`cp .env.example .env`: compose reads the file (with and without --profile monitoring), GRAFANA_PASSWORD empty"

    def build(self) -> str:
        # the check's own image name, so a user's zuora-workflow-sync:latest is never replaced
        set_env_lines(self.clone / ".env", {"AIRFLOW_IMAGE_NAME": self.image_name})
        start = time.monotonic()
        self.stack.compose("build", timeout=3600)
        built = time.monotonic() - start
        self.images.added.append(self.image_name)
        check = run(["docker", "run", "--rm", "--entrypoint", "pip", self.image_name, "check"], timeout=300)
        return f"`docker compose build` {built:.0f} s; pip check: {check.stdout.strip()}"

    def in_image(self, *argv: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        """`docker run --rm` of the project's image through its entrypoint, with variables."""
        flags = [
            f"--env={name}={value}" for name, value in {"CONNECTION_CHECK_MAX_COUNT": "0", **env}.items()
        ]
        return run(["docker", "run", "--rm", *flags, self.image_name, *argv], check=check, timeout=600)

    def image_contract(self) -> str:
        """The official image's contract, seen from outside (the real image or the stand-in)."""
        seen = {
            "pid 1": self.in_image("bash", "-c", "cat /proc/1/comm").stdout.strip(),
            "user": self.in_image("bash", "-c", "echo $(id -u):$(id -g) $AIRFLOW_HOME").stdout.strip(),
            "python": self.in_image(
                "python", "-c", "import sys, zuora; print(sys.version.split()[0])"
            ).stdout.strip(),
            "airflow version": self.in_image("airflow", "version").stdout.strip().splitlines()[-1],
            "version": self.in_image("version").stdout.strip().splitlines()[-1],
        }
        if (seen["pid 1"], seen["user"]) != ("dumb-init", "50000:0 /opt/airflow") or (
            seen["airflow version"] != seen["version"] or not seen["python"].startswith("3.11")
        ):
            raise Failed(f"{seen}")
        # the database wait gives up after CONNECTION_CHECK_MAX_COUNT tries
        unreachable = "postgresql+psycopg://a:b@nowhere.invalid/airflow"
        waited = self.in_image(
            "version",
            check=False,
            CONNECTION_CHECK_MAX_COUNT="2",
            CONNECTION_CHECK_SLEEP_TIME="1",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=unreachable,
        )
        if (
            waited.returncode == 0
            or "Maximum number of retries (2) reached" not in waited.stdout + waited.stderr
        ):
            raise Failed(
                f"the database wait did not give up after 2 tries: {tail(waited.stdout + waited.stderr)}"
            )
        # _AIRFLOW_DB_MIGRATE (on a throwaway SQLite database) and _PIP_ADDITIONAL_REQUIREMENTS
        extras = self.in_image(
            "bash",
            "-c",
            "airflow db check-migrations -t 0 && python -c 'import six; print(six.__version__)'",
            check=False,
            CONNECTION_CHECK_MAX_COUNT="20",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:////tmp/airflow.db",
            _AIRFLOW_DB_MIGRATE="true",
            _PIP_ADDITIONAL_REQUIREMENTS="six",
        )
        if extras.returncode != 0:
            raise Failed(
                f"_AIRFLOW_DB_MIGRATE / _PIP_ADDITIONAL_REQUIREMENTS: {tail(extras.stdout + extras.stderr)}"
            )
        return (
            f"PID 1 {seen['pid 1']}, uid:gid {seen['user']}, Python {seen['python']}, Airflow {seen['version']}; "
            "`bash`, `python`, `airflow X` and `X` dispatched; the database wait gives up after "
            "CONNECTION_CHECK_MAX_COUNT; _AIRFLOW_DB_MIGRATE migrates; _PIP_ADDITIONAL_REQUIREMENTS installs"
        )

    def placeholder_keys(self) -> str:
        done = self.stack.compose("up", "-d", check=False)
        logs = self.stack.compose("logs", "--no-color", "airflow-init", check=False, timeout=120)
        text = logs.stdout + logs.stderr
        wanted = ["ERROR: FERNET_KEY is not a Fernet key", "Fix the values in .env"]
        started = [
            s
            for s in ("airflow-apiserver", "airflow-scheduler")
            if self.stack.containers(s, running_only=True)
        ]
        self.stack.compose("down", "-v", check=False)
        if done.returncode == 0 or any(w not in text for w in wanted) or started:
            raise Failed(
                f"`up -d` exited {done.returncode}; running: {started}; airflow-init said:{tail(text)}"
            )
        return f"`up -d` exited {done.returncode}; airflow-init: {wanted[0]} (... and the command making one)"

    def fill_env(self) -> None:
        set_env_lines(
            self.clone / ".env",
            {
                "FERNET_KEY": fernet_key(),
                "ZUORA_EXPORT_ENCRYPTION_KEY": fernet_key(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
                "GRAFANA_PASSWORD": secrets.token_urlsafe(24),
                "AIRFLOW_UID": str(
                    self.args.airflow_uid if self.args.airflow_uid is not None else os.getuid()
                ),
            },
        )

    # 3. the stack
    def demo_up(self) -> str:
        self.fill_env()
        seconds = self.stack.up()
        services = sorted(self.stack.states())
        return f"`--profile demo up -d`: {len(services)} services healthy or done in {seconds:.0f} s"

    def customers(self) -> str:
        code = (
            "import json\nfrom zuora_simulator.register_demo import add_customer_arguments\n"
            f"print(json.dumps([argv[1] for argv, _ in add_customer_arguments({SIM!r}, {SIM_CA!r})]))"
        )
        self.expected = sorted(json.loads(self.stack.in_simulator(code)))
        stored = sorted(row[0] for row in self.stack.sql("SELECT customer_id FROM zuora.customers"))
        if stored != self.expected:
            raise Failed(f"zuora.customers {stored}, expected {self.expected}")
        for customer in self.expected:
            conn = self.stack.rest("GET", f"/connections/zuora_demo_{customer}")
            extra = json.loads(conn.get("extra") or "{}")
            if conn["host"] != SIM or extra.get("ca_bundle") != SIM_CA:
                raise Failed(f"connection zuora_demo_{customer}: host {conn['host']}, extra {extra}")
        return f"{len(stored)} customers ({', '.join(stored)}), connections over https with the demo CA"

    def first_run(self) -> str:
        wait_for("the DAG parsed", lambda: self.stack.api("GET", f"/api/v2/dags/{DAG}")[0] == 200, 300, 3)
        self.stack.rest("PATCH", f"/dags/{DAG}?update_mask=is_paused", {"is_paused": False})
        try:
            run_id = wait_for(
                "a scheduled run",
                lambda: [
                    r["dag_run_id"]
                    for r in self.stack.rest("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]
                    if r["run_type"] == "scheduled"
                ][:1],
                90,
                3,
            )[0]
            kind = "the scheduled run"
        except Failed:
            run_id = self.stack.trigger({})
            kind = "no scheduled run within 90 s of unpausing (next at the cron time): a triggered run"
        state = self.stack.wait_run(run_id)
        if state != "success":
            raise Failed(f"{kind} {run_id} ended {state}")
        return f"{kind} {run_id}: success, {self.stack.synced(run_id)}"

    def rest_run(self) -> str:
        start = time.monotonic()
        run_id = self.stack.trigger({"customer_ids": [], "full_refresh": False})
        state = self.stack.wait_run(run_id)
        if state != "success":
            raise Failed(f"{run_id} ended {state}")
        return f"POST /api/v2/dags/{DAG}/dagRuns -> {run_id}: success in {time.monotonic() - start:.0f} s, {self.stack.synced(run_id)}"

    def sync_page(self) -> str:
        anonymous, _ = self.stack.api("GET", "/zuora-sync/", token=None)
        status, page = self.stack.api("GET", "/zuora-sync/")
        if anonymous not in (401, 403) or status != 200 or not all(c in str(page) for c in self.expected):
            raise Failed(f"anonymous {anonymous}, logged in {status}: {str(page)[:200]}")
        return f"anonymous {anonymous}, logged in {status} naming every customer"

    def killed_worker(self) -> str:
        stack = self.stack
        stack.set_latency(self.args.latency_ms)
        try:
            exports_before = stack.export_calls()
            start = time.monotonic()
            run_id = stack.trigger({"full_refresh": True})

            def exporting():
                # a task of either shape running, and the simulator answering its export calls
                running = [
                    ti
                    for ti in stack.task_instances(run_id)
                    if ti["task_id"] in EXPORT_TASKS and ti["state"] == "running" and ti.get("hostname")
                ]
                return running if running and stack.export_calls() > exports_before else []

            running = wait_for("an export running", exporting, 300, 1)
            target = running[0]
            workers = stack.hostnames("airflow-worker")
            container = workers.get(target["hostname"])
            if not container:
                raise Failed(f"{target['hostname']} is no worker container ({list(workers)})")
            before = stack.inspect(container)
            os.kill(before["State"]["Pid"], signal.SIGKILL)  # the container's main process (dumb-init)
            killed_at = time.monotonic() - start

            def restarted():
                info = stack.inspect(container)
                return info["RestartCount"] > before["RestartCount"] and info["State"]["Running"] and info

            after = wait_for("the worker restarted by Docker", restarted, 120, 1)
            state = stack.wait_run(run_id)
            tis = [ti for ti in stack.task_instances(run_id) if ti["task_id"] in EXPORT_TASKS]
            killed = [
                ti
                for ti in tis
                if (ti["task_id"], ti["map_index"]) == (target["task_id"], target["map_index"])
            ]
            if (
                state != "success"
                or not killed
                or killed[0]["try_number"] < 2
                or killed[0]["state"] != "success"
            ):
                raise Failed(f"run {state}; the killed export: {killed}")
            label = target.get("rendered_map_index") or target["map_index"]
            return (
                f"SIGKILL to the worker's PID 1 at {killed_at:.0f} s during {target['task_id']} [{label}] "
                f"({self.args.latency_ms} ms per Zuora call); Docker restarted it (restart count "
                f"{after['RestartCount']}); "
                f"that export succeeded on try {killed[0]['try_number']}; run success in "
                f"{time.monotonic() - start:.0f} s, {stack.synced(run_id)}"
            )
        finally:
            stack.set_latency(0)

    def down_up_keeps(self) -> str:
        query = "SELECT (SELECT count(*) FROM zuora.sync_runs), (SELECT count(*) FROM zuora.workflows)"
        before = self.stack.sql(query)
        runs = self.stack.rest("GET", f"/dags/{DAG}/dagRuns")["total_entries"]
        self.stack.compose("down", profiles=("demo",))
        volumes = run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).stdout.split()
        seconds = self.stack.up()
        after = self.stack.sql(query)
        runs_after = self.stack.rest("GET", f"/dags/{DAG}/dagRuns")["total_entries"]
        if before != after or runs_after != runs or len(volumes) < 2:
            raise Failed(
                f"before {before} ({runs} runs), after {after} ({runs_after} runs), volumes {volumes}"
            )
        return f"sync_runs and workflows {before[0]} and {runs} DAG runs kept; up again in {seconds:.0f} s"

    def read_only_logins(self) -> str:
        said = []
        for login in ("zuora_grafana", "zuora_page"):
            count = self.stack.sql("SELECT count(*) FROM zuora.workflows", login=login)[0][0]
            for attempt in (
                "INSERT INTO zuora.customers (customer_id, name, zuora_conn_id) VALUES ('x', 'x', 'x')",
                "BEGIN READ WRITE; INSERT INTO zuora.customers (customer_id, name, zuora_conn_id) VALUES ('x', 'x', 'x')",
                "BEGIN READ WRITE; CREATE TABLE zuora.x (i int)",
                "BEGIN READ WRITE; CREATE TABLE public.x (i int)",
                "BEGIN READ WRITE; CREATE SCHEMA x",
            ):
                try:
                    self.stack.sql(attempt, login=login)
                except Failed as refused:
                    if "permission denied" not in str(refused) and "read-only transaction" not in str(
                        refused
                    ):
                        raise
                else:
                    raise Failed(f"{login} could: {attempt}")
            said.append(f"{login} reads ({count} workflows)")
        panels = self.dashboard_sql()
        for sql in panels:
            self.stack.sql(sql, login="zuora_grafana")
        return (
            "; ".join(said)
            + f", INSERT/CREATE refused (read-only and no privilege); the dashboard's {len(panels)} warehouse queries run as zuora_grafana"
        )

    def dashboard_sql(self) -> list[str]:
        dashboard = json.loads(
            (self.clone / "monitoring/grafana/dashboards/zuora-workflow-sync.json").read_text()
        )
        queries = [t["rawSql"] for p in dashboard["panels"] for t in p.get("targets", []) if t.get("rawSql")]
        # Grafana's macros and variables as Grafana expands them for the last 7 days, every customer
        queries = [
            re.sub(
                r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)",
                r"\1 BETWEEN now() - interval '7 days' AND now()",
                q,
            )
            for q in queries
        ]
        return [q.replace("${customer:regex}", ".*") for q in queries]

    def listening(self) -> str:
        open_ = []
        for container in self.stack.containers(running_only=True):
            info = self.stack.inspect(container)
            service = info["Config"]["Labels"]["com.docker.compose.service"]
            for port, bindings in (info["NetworkSettings"]["Ports"] or {}).items():
                for binding in bindings or []:
                    if binding["HostIp"] not in ("127.0.0.1", "::1"):
                        open_.append((service, port, binding["HostIp"], binding["HostPort"]))
        proxies = run(["ss", "-ltnpH"], check=False).stdout.splitlines()
        beyond = sorted(
            {line.split()[3] for line in proxies if "docker-proxy" in line}
            - {f"127.0.0.1:{p}" for p in PUBLISHED}
        )
        if {(s, p) for s, p, *_ in open_} != {("airflow-apiserver", "8080/tcp")} or any(
            not address.endswith(":8080") for address in beyond
        ):
            raise Failed(f"published beyond loopback: {open_}; docker-proxy listening on {beyond}")
        return f"beyond 127.0.0.1 only airflow-apiserver 8080 ({', '.join(beyond)}); the rest on loopback"

    # 4. monitoring
    def monitoring_files(self) -> str:
        mounts = [
            "-v",
            f"{self.clone}:/project:ro",
            "-v",
            f"{HERE}/monitoring_files.py:/monitoring_files.py:ro",
        ]
        done = run(
            [
                "docker",
                "run",
                "--rm",
                "-e",
                "CONNECTION_CHECK_MAX_COUNT=0",
                *mounts,
                self.image_name,
                "python",
                "/monitoring_files.py",
                "/project",
            ],
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise Failed(tail(done.stdout + done.stderr))
        prometheus = self.compose_images()["prometheus"]
        promtool = run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "promtool",
                "-v",
                f"{self.clone}/monitoring/prometheus:/etc/prometheus:ro",
                prometheus,
                "check",
                "config",
                "/etc/prometheus/prometheus.yml",
            ],
            check=False,
            timeout=120,
        )
        if promtool.returncode != 0:
            raise Failed(f"promtool: {tail(promtool.stdout + promtool.stderr)}")
        return (
            "strict YAML/JSON (duplicate keys refused) and schemas: "
            + "; ".join(done.stdout.strip().splitlines())
            + f"; `promtool check config` ({self.images.sources.get(prometheus)} {prometheus}): SUCCESS"
        )

    def model(self, *profiles: str) -> dict:
        """`compose config` (the file as compose resolved it from .env), parsed by PyYAML in the
        project's image (this script needs no package of its own)."""
        config = self.stack.compose("config", profiles=profiles, timeout=120).stdout
        parse = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"
        image = ["docker", "run", "--rm", "-i", "-e", "CONNECTION_CHECK_MAX_COUNT=0", self.image_name]
        return json.loads(run([*image, "python", "-c", parse], input=config, timeout=120).stdout)

    def grafana_refuses(self) -> str:
        """The grafana service's entrypoint as compose resolves it, run by sh with the image's
        /run.sh replaced by a stub: it refuses an empty GRAFANA_PASSWORD and starts with one."""
        grafana = self.model("monitoring")["services"]["grafana"]
        # `config` prints `$$` (a literal $) as written; the container gets `$`
        entrypoint = [part.replace("$$", "$") for part in grafana["entrypoint"]]
        password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
        if entrypoint[:2] != ["/bin/sh", "-c"] or "/run.sh" not in entrypoint[2]:
            raise Failed(f"grafana's entrypoint: {entrypoint}")
        stub = "printf '#!/bin/sh\\necho grafana starts\\n' > /tmp/run.sh; chmod +x /tmp/run.sh\n"
        script = stub + entrypoint[2].replace("/run.sh", "/tmp/run.sh")

        def start(value: str) -> subprocess.CompletedProcess:
            argv = [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "/bin/sh",
                "-e",
                f"GF_SECURITY_ADMIN_PASSWORD={value}",
            ]
            return run([*argv, self.image_name, "-c", script, *entrypoint[3:]], check=False, timeout=120)

        refused, started = start(""), start(password)
        if refused.returncode == 0 or "GRAFANA_PASSWORD is not set" not in refused.stderr:
            raise Failed(
                f"with an empty password: exit {refused.returncode}, {refused.stdout + refused.stderr}"
            )
        if started.returncode != 0 or started.stdout.strip() != "grafana starts" or not password:
            raise Failed(
                f"with .env's password: exit {started.returncode}, {started.stdout + started.stderr}"
            )
        first = refused.stderr.strip().splitlines()[0]
        return f'empty: exit {refused.returncode}, "{first}"; with .env\'s GRAFANA_PASSWORD (compose passes it): starts'

    def monitoring_up(self) -> str:
        env = self.clone / ".env"
        env.write_text(env.read_text() + (self.clone / "monitoring/airflow-metrics.env").read_text())
        # the demo stack (its Airflow services recreated with StatsD on) and what of the monitoring
        # profile can run here, by name: a service of a profile named on the command line starts
        # (v1 and v2); grafana only with its real image
        services = self.monitoring_services()
        seconds = self.stack.up(profiles=("demo", "monitoring"), services=tuple(services))

        def target_up():
            with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/targets", timeout=10) as page:
                targets = json.loads(page.read())["data"]["activeTargets"]
            return [
                t
                for t in targets
                if t["scrapeUrl"].startswith("http://statsd-exporter:9102") and t["health"] == "up"
            ]

        wait_for("Prometheus scraping statsd-exporter:9102", target_up, 120, 3)
        if "grafana" in services:
            self.grafana_answers()
        kind = self.images.sources.get(self.compose_images()["statsd-exporter"])
        ran = [s for s in ("statsd-exporter", "prometheus", "grafana") if s in services]
        return (
            f"monitoring/airflow-metrics.env appended to .env; `--profile monitoring up -d` {', '.join(ran)} "
            f"and the demo stack again in {seconds:.0f} s; Prometheus's target statsd-exporter:9102 up ({kind})"
        )

    def grafana_answers(self) -> None:
        """With the real Grafana image: healthy, the admin password from .env, both datasources."""
        env = (self.clone / ".env").read_text()
        password = re.search(r"^GRAFANA_PASSWORD='([^']*)'", env, re.M).group(1)
        login = base64.b64encode(f"admin:{password}".encode()).decode()

        def datasources():
            request = urllib.request.Request(
                "http://127.0.0.1:3000/api/datasources", headers={"Authorization": f"Basic {login}"}
            )
            with urllib.request.urlopen(request, timeout=10) as page:
                return sorted(source["uid"] for source in json.loads(page.read()))

        found = wait_for("Grafana's provisioned datasources", datasources, 120, 3)
        if found != ["prometheus", "warehouse"]:
            raise Failed(f"Grafana's datasources: {found}")

    def metrics_arrived(self) -> str:
        kind = self.images.sources.get(self.compose_images()["statsd-exporter"])
        if kind == "real":
            query, label = "zuora_sync_customer_sync_succeeded_total", "customer"
        else:  # the sink: every StatsD name it got, as a label
            query, label = (
                'compose_check_statsd_datagrams_total{name=~"airflow\\\\.zuora_sync\\\\..*"}',
                "name",
            )

        def series():
            url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
            with urllib.request.urlopen(url, timeout=10) as page:
                return json.loads(page.read())["data"]["result"]

        found = wait_for("our series in Prometheus", series, 120, 5)
        names = sorted({row["metric"].get(label, "") for row in found})
        return (
            f"Prometheus holds {len(found)} series of ours through statsd-exporter ({kind}), e.g. {names[:4]}"
        )

    # 5. scale, volumes, git
    def scaled(self) -> str:
        seconds = self.stack.up(
            "--scale",
            "airflow-worker=2",
            profiles=("demo", "monitoring"),
            services=tuple(self.monitoring_services()),
        )
        workers = self.stack.hostnames("airflow-worker")
        if len(workers) != 2:
            raise Failed(f"{len(workers)} workers running")
        run_id = self.stack.trigger({"full_refresh": True})
        state = self.stack.wait_run(run_id)
        tis = self.stack.task_instances(run_id)
        by_worker = Counter(ti["hostname"] for ti in tis if ti.get("hostname") and ti["state"] == "success")
        if state != "success" or set(by_worker) != set(workers):
            raise Failed(f"run {state}; task instances by worker {dict(by_worker)}; workers {list(workers)}")
        return f"2 workers healthy in {seconds:.0f} s; run {run_id} success, task instances per worker {sorted(by_worker.values())}, {self.stack.synced(run_id)}"

    def monitoring_services(self) -> list[str]:
        """The services of the demo profile (and those of none), and what of the monitoring
        profile can run here. Not `config --services`: v1 lists every service of the file there,
        whatever the profiles (v2 only those of the active profiles)."""
        services = [
            name
            for name, service in self.model("demo").get("services", {}).items()
            if not service.get("profiles") or "demo" in service["profiles"]
        ]
        services += ["statsd-exporter", "prometheus"]
        if self.images.sources.get(self.compose_images()["grafana"]) == "real":
            services.append("grafana")
        return services

    def clean_again(self) -> str:
        self.stack.compose("down", "-v", profiles=("demo", "monitoring"))
        volumes = run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).stdout.split()
        if volumes:
            raise Failed(f"`down -v` left volumes {volumes}")
        seconds = self.stack.up()
        runs = self.stack.rest("GET", f"/dags/{DAG}/dagRuns")["total_entries"]
        synced = self.stack.sql("SELECT count(*) FROM zuora.sync_runs")[0][0]
        customers = sorted(row[0] for row in self.stack.sql("SELECT customer_id FROM zuora.customers"))
        paused = self.stack.rest("GET", f"/dags/{DAG}")["is_paused"]
        if runs or synced != "0" or customers != self.expected or not paused:
            raise Failed(f"{runs} DAG runs, {synced} sync_runs, customers {customers}, paused {paused}")
        return f"`down -v` removed the volumes; `up -d` in {seconds:.0f} s: 0 DAG runs, 0 sync_runs, the DAG paused, the {len(customers)} demo customers registered again"

    def git_clean(self) -> str:
        status = run(["git", "-C", str(self.clone), "status", "--porcelain"]).stdout
        if status.strip():
            raise Failed(f"git status: {tail(status)}")
        ignored = run(["git", "-C", str(self.clone), "status", "--porcelain", "--ignored"]).stdout.split("\n")
        return f"nothing to commit ({len([i for i in ignored if i.startswith('!!')])} ignored paths: .env, config/, logs/, ...)"

    # the whole run
    def all(self) -> None:
        r = self.report
        r.check("clone", self.clone_repo, gate=True)
        r.check("an earlier check's leftovers", self.earlier_runs, gate=True)
        r.check("published ports free", self.ports_free, gate=True)
        r.check(f"base image {BASE}", self.base_image, gate=True)
        self.image_checks()
        r.check("a copied .env.example is read", self.copy_env, gate=True)
        r.check("image builds, pip check", self.build, gate=True)
        r.check("the image's entrypoint contract", self.image_contract)
        r.check("a placeholder Fernet key is refused", self.placeholder_keys)
        r.check("--profile demo up -d healthy", self.demo_up, gate=True)
        r.check("the demo customers registered", self.customers)
        r.check("a scheduled (or triggered) run syncs all", self.first_run)
        r.check("a run triggered through the REST API", self.rest_run)
        r.check("the sync page: anonymous refused, logged in answered", self.sync_page)
        r.check("the worker SIGKILLed during an export", self.killed_worker)
        r.check("down then up keeps the warehouse", self.down_up_keeps)
        r.check("the read-only logins cannot write", self.read_only_logins)
        r.check("the monitoring files", self.monitoring_files)
        r.check("grafana refuses an empty GRAFANA_PASSWORD", self.grafana_refuses)
        r.check("--profile monitoring: Prometheus scrapes statsd-exporter", self.monitoring_up)
        r.check("nothing but the UI listens beyond loopback", self.listening)
        r.check("--scale airflow-worker=2 shares the work", self.scaled)
        r.check("Airflow's StatsD series reach Prometheus", self.metrics_arrived)
        r.check("down -v, then up starts clean", self.clean_again)
        r.check("git status stays clean", self.git_clean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the repository to clone (its HEAD)")
    parser.add_argument(
        "--keep-images", action="store_true", help="keep the images built or pulled (reused next time)"
    )
    parser.add_argument(
        "--keep-stack",
        action="store_true",
        help="leave the stack and the clone for a look (debugging; the next check removes them)",
    )
    parser.add_argument("--pull-timeout", type=float, default=60, help="seconds for each `docker pull`")
    parser.add_argument(
        "--latency-ms", type=int, default=1500, help="the simulator's latency while a worker is killed"
    )
    parser.add_argument(
        "--airflow-uid", type=int, help="AIRFLOW_UID in .env (default: `id -u`, as the docs say)"
    )
    args = parser.parse_args(argv)
    if run(["docker", "info"], check=False, timeout=60).returncode != 0:
        log("compose-check needs a running Docker engine (`docker info` failed).")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="compose-check-"))
    checks = Checks(args, workdir)

    def stopped(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal, `kill`: clean up too
        signal.signal(signum, stopped)
    interrupted = False
    try:
        checks.all()
    except KeyboardInterrupt as exc:
        interrupted = True
        log(f"interrupted ({exc or 'SIGINT'}): cleaning up")
    finally:
        if args.keep_stack:
            log(f"--keep-stack: project {checks.project} left running in {checks.clone}")
        else:
            left = checks.stack.cleanup() if checks.stack else []
            removed = [] if args.keep_images or not checks.images else checks.images.added
            kept = checks.images.remove() if removed else []
            shutil.rmtree(workdir, ignore_errors=True)
            remaining_text = ", ".join(
                f"{len(labelled(kind, checks.project))} {kind}s"
                for kind in ("container", "network", "volume")
            )
            log(
                f"cleanup: `down -v` of project {checks.project}"
                + (f", then removed {left}" if left else "")
                + (f"; images removed: {removed}" if removed else "; images kept" if args.keep_images else "")
                + (f"; could not remove {kept}" if kept else "")
                + f"; {workdir} removed; left of the project: {remaining_text}"
            )
    log(checks.report.summary() + (", interrupted" if interrupted else ""))
    return 1 if checks.report.failed or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
