"""A PostgreSQL cluster of the test's own, on a free port, that tests may stop, start,
freeze and thaw (never the shared cluster on 5432).

initdb into a temporary directory with the binaries of /usr/lib/postgresql/*/bin (or
``pg_config --bindir``). PostgreSQL refuses to run as root, so as root every command runs
as the ``postgres`` OS user (runuser), in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg

from tests.e2e.support import free_port


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: the newest /usr/lib/postgresql/N/bin, or pg_config's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parents[1].name)
                   if Path(p).parents[1].name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                             check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    return None


class PrivateCluster:
    """One throwaway cluster: ``url`` points at its ``rules`` database."""

    def __init__(self, bindir: Path, directory: Path, port: int) -> None:
        self.bindir = bindir
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/rules"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 120) -> str:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.directory)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        return done.stdout

    def init(self) -> None:
        """initdb, start, and create the ``rules`` database."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.start()
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE rules")

    def start(self) -> None:
        """Starts the cluster and waits until it accepts connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.directory} -c fsync=off "
                   f"-c max_connections=60")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stops the cluster (``immediate``: as a crash would, no goodbye to anyone)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it started."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> list[psutil.Process]:
        """SIGSTOP every process of the cluster: it hangs, connections stay open."""
        frozen = self.processes()
        for process in frozen:
            process.send_signal(signal.SIGSTOP)
        return frozen

    @staticmethod
    def thaw(frozen: list[psutil.Process]) -> None:
        """SIGCONT what ``freeze`` stopped."""
        for process in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        """Whether the postmaster is up."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            return psutil.Process(int(pid_file.read_text().split()[0])).is_running()
        except (psutil.NoSuchProcess, ValueError):
            return False


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A fresh cluster on a free port, removed with everything in it afterwards."""
    bindir = postgres_bindir()
    assert bindir is not None, "no PostgreSQL binaries (initdb) on this machine"
    directory = Path(tempfile.mkdtemp(prefix="rules-service-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
    directory.chmod(0o700)
    cluster = PrivateCluster(bindir, directory, free_port())
    try:
        cluster.init()
        yield cluster
    finally:
        try:
            if cluster.data.exists() and (cluster.data / "postmaster.pid").exists():
                PrivateCluster.thaw(cluster.processes())
                cluster.stop()
        except Exception:  # best effort; the directory goes anyway
            pass
        deadline = time.monotonic() + 10
        while cluster.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(directory, ignore_errors=True)
