"""A throwaway PostgreSQL cluster for the test suite.

When no TEST_DATABASE_URL/DATABASE_URL is set but the PostgreSQL server binaries are
installed, the suite runs `initdb` into a fresh directory under /tmp, starts the server
with `pg_ctl` on a free 127.0.0.1 port (durability switched off: it is thrown away) and
tears it down with `pg_ctl stop -m immediate` plus removal of the directory.

PostgreSQL refuses to run as root, so as root both tools run as the `postgres` system
user (or `nobody`) through `runuser`/`su`, and the directory is handed to that user.
Every failure is raised as ClusterError with a message fit for a skip/fail reason.
"""

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started; str() says why."""


def find_binaries() -> tuple[Path, Path] | None:
    """(initdb, pg_ctl) from PATH, else from /usr/lib/postgresql/*/bin, newest first."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb), Path(pg_ctl)

    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True):
        if os.access(bindir / "initdb", os.X_OK) and os.access(bindir / "pg_ctl", os.X_OK):
            return bindir / "initdb", bindir / "pg_ctl"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ClusterError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _as_user(user: pwd.struct_passwd | None, cmd: list[str]) -> list[str]:
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *cmd]
    return ["su", "-s", "/bin/sh", user.pw_name, "-c", shlex.join(cmd)]


@dataclass
class Cluster:
    """A running throwaway cluster; stop() is idempotent and removes every trace."""

    url: str
    base: Path
    pg_ctl: Path
    user: pwd.struct_passwd | None = None
    stopped: bool = field(default=False)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_user(self.user, [str(self.pg_ctl), *args]),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            check=False,
        )

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run("stop", "-D", str(self.datadir), "-m", "immediate", "-w", timeout=60)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _tail(text: str, lines: int = 15) -> str:
    tail = " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())
    return tail or "(no output)"


def start_cluster() -> Cluster:
    """initdb + pg_ctl start a fresh cluster; return it (call .stop() when done)."""
    binaries = find_binaries()
    if binaries is None:
        raise ClusterError("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
    initdb, pg_ctl = binaries
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="erp-pg-", dir="/tmp"))  # mode 0700
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    cluster = Cluster(url="", base=base, pg_ctl=pg_ctl, user=user)
    who = f" as user {user.pw_name}" if user else ""
    try:
        result = subprocess.run(
            _as_user(
                user,
                [
                    str(initdb),
                    *("-D", str(cluster.datadir), "-A", "trust", "-U", "postgres"),
                    *("--no-sync", "-E", "UTF8", "--locale=C"),
                ],
            ),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=base,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{initdb} failed{who} (exit {result.returncode}): "
                + _tail(result.stderr or result.stdout)
            )
        sockdir = base / "sock"
        sockdir.mkdir(mode=0o700)
        if user is not None:
            os.chown(sockdir, user.pw_uid, user.pw_gid)
        log = base / "server.log"
        port = _free_port()
        options = (
            f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        # -l matters: without a log file the postmaster inherits our pipes and
        # subprocess.run would wait for it to exit.
        result = cluster._run(
            "start", "-D", str(cluster.datadir), "-l", str(log), "-w", "-t", "60", "-o", options
        )
        if result.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise ClusterError(
                f"{pg_ctl} start failed{who} on port {port} (exit {result.returncode}): "
                + _tail(result.stderr + result.stdout + server_log)
            )
    except (OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        raise ClusterError(f"cannot start a throwaway PostgreSQL cluster{who}: {error}") from error
    except ClusterError:
        cluster.stop()
        raise
    cluster.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return cluster
