"""Throwaway PostgreSQL servers for tests and CI, built from Debian's packages.

No Docker: the harness runs the distribution's ``initdb`` and ``postgres`` binaries
against a temporary data directory, listening on a free loopback TCP port and a
private unix-socket directory, with ``trust`` authentication.

PostgreSQL refuses to run as root. When this process is root, the server runs as an
unprivileged OS user (``postgres`` if it exists, else a ``journeypg`` system user
created on demand, else ``nobody``; override with ``JOURNEY_PG_OS_USER``). The
privilege drop is done by :class:`subprocess.Popen` itself (``user=``/``group=``/
``extra_groups=``), so the child *is* the postmaster: no ``runuser`` or ``su``
process sits in between, which keeps ``stop()``/``kill()`` exact. When not root,
the server runs as the current user.

If no binaries are installed, :meth:`PostgresServer.start` (with ``install=True``)
runs ``scripts/ensure-postgres.sh``, which apt-installs Debian's ``postgresql``.

Stdlib only; psycopg is used when importable (admin statements), otherwise ``psql``.

Command line::

    python -m tests.harness.postgres run      # prints the URL, runs until SIGTERM/SIGINT
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "DEFAULT_DBNAME",
    "DEFAULT_SUPERUSER",
    "ENSURE_SCRIPT",
    "PostgresError",
    "PostgresParams",
    "PostgresServer",
    "ensure_bin_dir",
    "find_bin_dir",
    "main",
]

DEFAULT_DBNAME = "journey"
DEFAULT_SUPERUSER = "postgres"
LOOPBACK = "127.0.0.1"
FALLBACK_OS_USER = "journeypg"
ENSURE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-postgres.sh"

# Appended to postgresql.conf after initdb. Durability stays ON (fsync, synchronous
# commit, full-page writes): crash tests kill the postmaster and expect every
# acknowledged commit to survive.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{LOOPBACK}'",
    "max_connections": "100",
    "shared_buffers": "16MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "jit": "off",
    "huge_pages": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "timezone": "'UTC'",
}

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The harness could not find, install, start or talk to PostgreSQL."""


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    parts = re.findall(r"\d+", path.parent.name)
    return tuple(int(p) for p in parts) or (0,)


def _is_bin_dir(path: Path) -> bool:
    return all(os.access(path / exe, os.X_OK) for exe in ("initdb", "postgres"))


def find_bin_dir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``, or ``None``.

    Order: ``$JOURNEY_PG_BIN``; the newest ``/usr/lib/postgresql/*/bin``; ``initdb``
    on ``PATH``.
    """
    override = os.environ.get("JOURNEY_PG_BIN")
    if override:
        path = Path(override)
        return path if _is_bin_dir(path) else None
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if _is_bin_dir(p)),
        key=_version_key,
        reverse=True,
    )
    if candidates:
        return candidates[0]
    initdb = shutil.which("initdb")
    if initdb:
        path = Path(initdb).resolve().parent
        if _is_bin_dir(path):
            return path
    return None


def ensure_bin_dir(*, install: bool = True) -> Path:
    """Like :func:`find_bin_dir`, but runs ``scripts/ensure-postgres.sh`` if needed."""
    found = find_bin_dir()
    if found is not None:
        return found
    if not install:
        raise PostgresError("PostgreSQL server binaries (initdb) not found; run scripts/ensure-postgres.sh")
    if not ENSURE_SCRIPT.exists():
        raise PostgresError(f"PostgreSQL binaries not found and {ENSURE_SCRIPT} is missing")
    proc = subprocess.run(
        ["bash", str(ENSURE_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip().replace("\n", " | ")
        raise PostgresError(f"{ENSURE_SCRIPT.name} failed ({proc.returncode}): {detail}")
    lines = proc.stdout.strip().splitlines()
    found = Path(lines[-1]) if lines else None
    if found is None or not _is_bin_dir(found):
        found = find_bin_dir()
    if found is None:
        raise PostgresError(f"{ENSURE_SCRIPT.name} succeeded but initdb is still not found")
    return found


# --------------------------------------------------------------------------- OS user


def _pick_os_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as, or ``None`` to run as ourselves."""
    if os.geteuid() != 0:
        return None
    override = os.environ.get("JOURNEY_PG_OS_USER")
    if override:
        try:
            return pwd.getpwnam(override)
        except KeyError:
            raise PostgresError(f"JOURNEY_PG_OS_USER={override!r} does not exist") from None
    for name in ("postgres", FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd:
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_OS_USER,
            ],
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(FALLBACK_OS_USER)
    return pwd.getpwnam("nobody")


def _traversable_by(path: Path, pw: pwd.struct_passwd) -> bool:
    """Whether every directory from / down to ``path`` is searchable by ``pw``."""
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == pw.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == pw.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


# --------------------------------------------------------------------------- params


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


@dataclass(frozen=True)
class PostgresParams:
    """Connection parameters of a PostgreSQL database (local harness or external)."""

    host: str
    port: int
    user: str
    password: str = ""
    dbname: str = DEFAULT_DBNAME

    @classmethod
    def from_url(cls, url: str) -> PostgresParams:
        """Parse ``postgresql://user[:password]@host[:port][/dbname]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a postgresql:// URL: {url!r}")
        dbname = unquote(parts.path.lstrip("/")) or DEFAULT_DBNAME
        return cls(
            host=parts.hostname or LOOPBACK,
            port=parts.port or 5432,
            user=unquote(parts.username or DEFAULT_SUPERUSER),
            password=unquote(parts.password or ""),
            dbname=dbname,
        )

    @property
    def url(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{quote(self.dbname, safe='')}"

    @property
    def dsn(self) -> str:
        return self.url

    def with_dbname(self, dbname: str) -> PostgresParams:
        return replace(self, dbname=dbname)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect(**kwargs)``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
        }

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for eventsourcing's PostgreSQL persistence (9.5.x key names)."""
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            # eventsourcing raises if this key is absent; empty is fine with trust auth.
            "POSTGRES_PASSWORD": self.password,
        }
        env.update(extra)
        return env

    # -- admin ---------------------------------------------------------------

    def execute_admin(self, statement: str, *, dbname: str | None = None) -> None:
        """Run one statement in autocommit mode (psycopg if importable, else psql).

        Connects to ``dbname`` (default: this database).
        """
        dbname = dbname or self.dbname
        try:
            import psycopg
        except ImportError:
            self._psql(statement, dbname=dbname)
            return
        kwargs = self.connect_kwargs() | {"dbname": dbname, "connect_timeout": 10}
        with psycopg.connect(autocommit=True, **kwargs) as conn:
            conn.execute(statement.encode())

    def _psql(self, statement: str, *, dbname: str) -> None:
        bin_dir = find_bin_dir()
        psql = (bin_dir / "psql") if bin_dir else None
        exe = str(psql) if psql and psql.exists() else shutil.which("psql")
        if exe is None:
            raise PostgresError("neither psycopg nor psql is available")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.password
        cmd = [exe, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port)]
        cmd += ["-U", self.user, "-d", dbname, "-c", statement]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise PostgresError(f"psql failed: {proc.stderr.strip()}")

    def _admin_db(self, target: str) -> str:
        return "postgres" if target == self.dbname else self.dbname

    def create_database(self, name: str) -> PostgresParams:
        """``CREATE DATABASE name``; returns these parameters pointing at it."""
        statement = f'CREATE DATABASE "{_check_ident(name)}"'
        self.execute_admin(statement, dbname=self._admin_db(name))
        return self.with_dbname(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (disconnects its sessions)."""
        statement = f'DROP DATABASE IF EXISTS "{_check_ident(name)}" WITH (FORCE)'
        self.execute_admin(statement, dbname=self._admin_db(name))

    def ping(self, timeout: float = 5.0) -> None:
        """Raise unless the database accepts a connection and ``SELECT 1``."""
        try:
            import psycopg
        except ImportError:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return
        kwargs = self.connect_kwargs() | {"connect_timeout": max(1, int(timeout))}
        with psycopg.connect(**kwargs) as conn:
            conn.execute("SELECT 1")


# --------------------------------------------------------------------------- server


class PostgresServer:
    """A private PostgreSQL server in a temporary directory.

    ``start()`` runs initdb the first time and creates database ``dbname``; after
    ``stop()`` or ``kill()``, ``start()`` reuses the same data directory and port,
    so committed data and the DSN survive. ``cleanup()`` (or leaving the ``with``
    block) stops the server and deletes the directory.
    """

    def __init__(
        self,
        *,
        dbname: str = DEFAULT_DBNAME,
        user: str = DEFAULT_SUPERUSER,
        bin_dir: Path | None = None,
        base_dir: Path | None = None,
        install: bool = False,
        start_timeout: float = 60.0,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._dbname = _check_ident(dbname)
        self._user = user
        self._bin_dir = bin_dir
        self._install = install
        self._requested_base = base_dir
        self.start_timeout = start_timeout
        self.settings = dict(SERVER_SETTINGS) | dict(settings or {})
        self._base: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._initialised = False
        #: wall-clock seconds of the last ``initdb`` and of the last ``start()``.
        self.initdb_seconds: float | None = None
        self.start_seconds: float | None = None

    # -- properties ----------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("server has not been started")
        return self._port

    @property
    def user(self) -> str:
        return self._user

    @property
    def password(self) -> str:
        return ""

    @property
    def dbname(self) -> str:
        return self._dbname

    @property
    def params(self) -> PostgresParams:
        return PostgresParams(self.host, self.port, self.user, self.password, self.dbname)

    @property
    def url(self) -> str:
        return self.params.url

    @property
    def dsn(self) -> str:
        return self.params.dsn

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise PostgresError("server has not been started")
        return self._base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def os_user(self) -> str:
        """Name of the OS user the server processes run as."""
        if self._os_user is not None:
            return self._os_user.pw_name
        return pwd.getpwuid(os.geteuid()).pw_name

    @property
    def pid(self) -> int | None:
        """PID of the running postmaster, if any."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def env(self, **extra: str) -> dict[str, str]:
        return self.params.env(**extra)

    def connect_kwargs(self) -> dict[str, Any]:
        return self.params.connect_kwargs()

    def create_database(self, name: str) -> PostgresParams:
        return self.params.create_database(name)

    def drop_database(self, name: str) -> None:
        self.params.drop_database(name)

    def execute_admin(self, statement: str, *, dbname: str | None = None) -> None:
        self.params.execute_admin(statement, dbname=dbname)

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def start(self) -> Self:
        """Start (initdb first if needed) and wait until connections are accepted."""
        if self.running:
            return self
        t0 = time.monotonic()
        if self._bin_dir is None:
            self._bin_dir = ensure_bin_dir(install=self._install)
        if self._base is None:
            self._prepare_dirs()
        if not self._initialised:
            self._initdb()
        first_start = self._port is None
        attempts = 5 if first_start else 1
        for attempt in range(attempts):
            if first_start:
                self._port = _free_port()
            try:
                self._spawn_and_wait()
                break
            except PostgresError:
                if attempt + 1 < attempts and self._port_in_use_failure():
                    continue
                raise
        if first_start:
            self.params.create_database(self._dbname)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit.

        The postmaster only exits after all its children have, so nothing is left.
        Falls back to :meth:`kill` after ``timeout`` seconds.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._proc = None

    def kill(self, timeout: float = 10.0) -> None:
        """Simulate a crash: SIGKILL the postmaster and its backends, no shutdown.

        PostgreSQL children call ``setsid()``, so they are not in the postmaster's
        process group; orphaned backends exit by themselves on postmaster death,
        but only eventually, and one still attached to the old shared memory makes
        the next ``start()`` refuse to run. So the postmaster is frozen (SIGSTOP, no
        more forks), its children are listed, then all are SIGKILLed and awaited.
        ``start()`` afterwards performs ordinary crash recovery from the WAL.
        """
        proc = self._proc
        if proc is None:
            return
        children: list[int] = []
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
                children = _children_of(proc.pid)
                os.kill(proc.pid, signal.SIGKILL)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + timeout
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.005)
        self._proc = None

    def cleanup(self) -> None:
        """Stop the server and delete its directory (unless ``JOURNEY_PG_KEEP=1``)."""
        try:
            self.stop()
        finally:
            if self._base is not None and os.environ.get("JOURNEY_PG_KEEP") != "1":
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
                self._initialised = False
                self._port = None

    # -- internals -----------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self._os_user = _pick_os_user()
        root = self._requested_base or Path(os.environ.get("JOURNEY_PG_TMPDIR") or tempfile.gettempdir())
        if self._os_user is not None and not _traversable_by(root.resolve(), self._os_user):
            root = Path("/tmp")  # must be reachable by the unprivileged user
        # Keep it short: unix socket paths are limited to ~107 bytes.
        base = Path(tempfile.mkdtemp(prefix="journey-pg-", dir=root))
        (base / "sock").mkdir(mode=0o700)
        if self._os_user is not None:
            for path in (base, base / "sock"):
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)
        self._base = base

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env["LANG"] = "C"
        env["LC_ALL"] = "C"
        if self._os_user is not None:
            env["HOME"] = str(self.base_dir)
            env["USER"] = env["LOGNAME"] = self._os_user.pw_name
        return env

    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"cwd": str(self.base_dir), "env": self._child_env()}
        if self._os_user is not None:
            kwargs |= {
                "user": self._os_user.pw_uid,
                "group": self._os_user.pw_gid,
                "extra_groups": [],
            }
        return kwargs

    def _exe(self, name: str) -> str:
        assert self._bin_dir is not None
        return str(self._bin_dir / name)

    def _initdb(self) -> None:
        t0 = time.monotonic()
        cmd = [
            self._exe("initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            self._user,
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            **self._popen_kwargs(),
        )
        if proc.returncode != 0:
            out = proc.stdout.decode(errors="replace").strip()
            raise PostgresError(f"initdb failed ({proc.returncode}) as {self.os_user}: {out}")
        lines = [
            "",
            "# --- tests/harness/postgres.py ---",
            f"unix_socket_directories = '{self.socket_dir}'",
            *(f"{key} = {value}" for key, value in self.settings.items()),
            "",
        ]
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n".join(lines))
        self._initialised = True
        self.initdb_seconds = time.monotonic() - t0

    def _spawn_and_wait(self) -> None:
        cmd = [self._exe("postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: kill() can reap backends
                **self._popen_kwargs(),
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        pidfile = self.data_dir / "postmaster.pid"
        delay = 0.005
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PostgresError(
                    f"postgres exited with code {code} during start-up; log tail:\n" + self.log_tail()
                )
            if self._pidfile_ready(pidfile) and self._tcp_accepts():
                return
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"postgres not ready after {self.start_timeout:.0f}s; log tail:\n" + self.log_tail()
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _pidfile_ready(self, pidfile: Path) -> bool:
        # Line 8 of postmaster.pid is the postmaster status (PostgreSQL >= 10);
        # it reads "ready" once the server accepts connections (after recovery).
        try:
            lines = pidfile.read_text(errors="replace").splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self._proc.pid if self._proc else ""):
            return False
        return lines[7].strip() == "ready"

    def _tcp_accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _port_in_use_failure(self) -> bool:
        tail = self.log_tail(40)
        return "could not bind" in tail or "Address already in use" in tail

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after ``comm``: [state, ppid, pgrp, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." - comm may contain spaces and parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def _children_of(pid: int) -> list[int]:
    """PIDs of the live direct children of ``pid`` (Linux /proc; [] elsewhere)."""
    children = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = _proc_stat(entry.name)
                if fields and len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
                    children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _proc_stat(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.postgres",
        description="Run a throwaway PostgreSQL server until SIGTERM/SIGINT.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a server, print its URL, wait for SIGTERM")
    run.add_argument("--dbname", default=DEFAULT_DBNAME)
    run.add_argument("--no-install", action="store_true", help="do not apt-install PostgreSQL if missing")
    run.add_argument("--env", action="store_true", help="also print eventsourcing env as export")
    sub.add_parser("bin-dir", help="print the PostgreSQL bin dir (installing if needed)")
    args = parser.parse_args(argv)

    if args.command == "bin-dir":
        print(ensure_bin_dir())
        return 0

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = PostgresServer(dbname=args.dbname, install=not args.no_install)
    try:
        server.start()
        print(server.url, flush=True)
        if args.env:
            for key, value in server.env().items():
                print(f"export {key}={shlex.quote(value)}", flush=True)
        print(
            f"postgres pid {server.pid} as {server.os_user}, data {server.data_dir}, "
            f"started in {server.start_seconds:.2f}s",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            if not server.running:
                print("postgres exited unexpectedly:\n" + server.log_tail(), file=sys.stderr)
                return 1
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
