"""A real, single-node Apache Kafka broker (KRaft mode) for tests and CI, without Docker.

The broker jars come from Maven Central via Maven (see ``infra/kafka/pom.xml``) and are cached
under ``$JOURNEY_CACHE`` (default ``~/.cache/journey``) in ``kafka-<version>/libs``.

Usage::

    with KafkaBroker() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        ...
        broker.restart()   # same ports, same data dir: produced data survives

Command line::

    python -m tests.harness.kafka fetch   # only download the jars
    python -m tests.harness.kafka run     # start a broker, print its bootstrap, run until Ctrl-C

Only the standard library and kafka-python are used.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaHarnessError",
    "cache_root",
    "ensure_jars",
    "main",
    "wait_for_kafka",
]

log = logging.getLogger(__name__)

#: Kafka release run by the harness. kafka-python 3.0.x knows broker versions up to 4.3.
KAFKA_VERSION = os.environ.get("JOURNEY_KAFKA_VERSION", "4.3.1")

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = REPO_ROOT / "infra" / "kafka" / "pom.xml"

_STAMP_NAME = ".complete"
_LOG_TAIL_LINES = 40

_LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


class KafkaHarnessError(RuntimeError):
    """The broker could not be provided (missing tools, download or start failure)."""


def _key_error_line(text: str) -> str:
    """The most telling line of a JVM/Kafka failure log (first exception or ERROR line)."""
    for line in text.splitlines():
        if "Exception" in line or " ERROR " in line or line.startswith("Error"):
            return line.strip()[:300]
    return ""


# --------------------------------------------------------------------------------------------
# Jars
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$JOURNEY_CACHE`` or ``~/.cache/journey``."""
    env = os.environ.get("JOURNEY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "journey"


def _stamp_text(version: str) -> str:
    pom_digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    return f"kafka={version}\npom-sha256={pom_digest}\n"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (several pytest workers may fetch at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_jars(version: str = KAFKA_VERSION, *, quiet: bool = True) -> Path:
    """Return the lib dir holding the broker jars, downloading them with Maven if needed.

    The download goes to a scratch dir that is renamed into place, and a stamp file (recording
    the Kafka version and a hash of the pom) is written last; a missing or stale stamp means
    the download is redone, so an interrupted fetch never leaves a half-filled lib dir in use.
    """
    base = cache_root() / f"kafka-{version}"
    libs = base / "libs"
    stamp = base / _STAMP_NAME
    if not POM_PATH.is_file():
        raise KafkaHarnessError(f"missing {POM_PATH}")
    expected = _stamp_text(version)

    def ready() -> bool:
        return stamp.is_file() and stamp.read_text() == expected and libs.is_dir()

    if ready():
        return libs
    with _file_lock(base.parent / f".kafka-{version}.lock"):
        if ready():  # another process finished while we waited for the lock
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaHarnessError("Maven ('mvn') is not on PATH; cannot fetch the Kafka jars")
        stamp.unlink(missing_ok=True)
        base.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=base))
        cmd = [
            mvn,
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM_PATH),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={scratch}",
            f"-Dkafka.version={version}",
            "-DincludeScope=runtime",
        ]
        if quiet:
            cmd.insert(1, "-q")
        started = time.monotonic()
        log.info("fetching Kafka %s jars with Maven into %s", version, libs)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise KafkaHarnessError("Maven timed out fetching the Kafka jars") from exc
        if proc.returncode != 0 or not any(scratch.glob(f"kafka_2.13-{version}.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            output = (proc.stdout + proc.stderr).strip().splitlines()[-30:]
            raise KafkaHarnessError(
                f"Maven failed (exit {proc.returncode}) fetching Kafka {version}:\n" + "\n".join(output)
            )
        if libs.exists():
            shutil.rmtree(libs)
        scratch.chmod(0o755)  # mkdtemp creates it 0700
        scratch.rename(libs)
        stamp.write_text(expected)
        log.info("fetched Kafka jars in %.1fs", time.monotonic() - started)
        for stale in base.glob("libs.partial-*"):  # leftovers of interrupted fetches
            shutil.rmtree(stale, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------------------------
# Readiness probe
# --------------------------------------------------------------------------------------------


def _port_error(host: str, port: int, timeout: float = 0.5) -> OSError | None:
    """None if a TCP connection to host:port succeeds, else the error."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)


def wait_for_kafka(
    bootstrap: str,
    timeout: float = 30.0,
    is_running: Callable[[], bool] | None = None,
) -> None:
    """Block until a kafka-python admin client can list topics on ``bootstrap``.

    ``is_running`` may be a zero-argument callable returning False once the broker process
    has died, to fail fast instead of waiting for the whole timeout.
    """
    from kafka import KafkaAdminClient  # local import: keep `fetch` usable without kafka-python

    deadline = time.monotonic() + timeout
    host, port = _split_bootstrap(bootstrap)
    last_error: BaseException | None = None
    while True:
        if is_running is not None and not is_running():
            raise KafkaHarnessError("the broker process exited during startup")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaHarnessError(
                f"Kafka at {bootstrap} not ready after {timeout:.0f}s (last error: {last_error!r})"
            )
        # Cheap TCP probe first: in KRaft the client listener only opens once the broker is
        # unfenced, and every failed KafkaAdminClient construction leaves an IO thread behind.
        tcp_error = _port_error(host, port)
        if tcp_error is not None:
            last_error = tcp_error
            time.sleep(0.2)
            continue
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="journey-harness-probe",
                bootstrap_timeout_ms=max(1000, int(min(remaining, 5.0) * 1000)),
                request_timeout_ms=5000,
            )
        except Exception as exc:
            last_error = exc
            time.sleep(0.3)
            continue
        try:
            admin.list_topics()
            return
        except Exception as exc:
            last_error = exc
            time.sleep(0.3)
        finally:
            admin.close()


# --------------------------------------------------------------------------------------------
# Broker
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _random_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """Same format and rule as Kafka's ``Uuid.randomUuid``: url-safe base64 of 16 bytes, no
    padding, never starting with ``-``. One id in 64 would start with a dash, and the storage
    tool's argument parser reads it as an option ("--cluster-id: expected one argument"); that
    failed a CI run."""
    while True:
        cluster_id = base64.urlsafe_b64encode(draw()).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Resolved up front so the forked child only makes one foreign call (no imports after fork).
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """SIGKILL the broker if the Python process that started it dies (no orphan JVMs)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _preexec() -> Callable[[], None] | None:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only use it from the main
    # thread; a restart() done from a helper thread must not tie the broker to that thread.
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    return _die_with_parent


class KafkaBroker:
    """One KRaft broker+controller JVM on free loopback ports with a private data dir."""

    #: The harness owns this broker (lifecycle control available); see conftest_kafka.
    external = False

    def __init__(
        self,
        *,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        start_timeout: float = 60.0,
        work_dir: Path | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self.heap = heap
        self.start_timeout = start_timeout
        self.extra_config = dict(extra_config or {})
        self._own_work_dir = work_dir is None
        self._work_dir: Path | None = work_dir
        self._port: int | None = None
        self._controller_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    # -- paths / properties ------------------------------------------------------------------

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="journey-kafka-"))
        return self._work_dir

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "broker.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise KafkaHarnessError("broker has not been started yet")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KafkaBroker:
        """Start the broker (formatting storage on first start) and wait until it serves."""
        with self._lock:
            if self.running:
                return self
            java = shutil.which("java")
            if java is None:
                raise KafkaHarnessError("'java' is not on PATH; cannot run the Kafka broker")
            libs = ensure_jars(self.version)
            if self._port is None:  # first start: pick ports; restarts reuse them
                self._port = _free_port()
                self._controller_port = _free_port()
                while self._controller_port == self._port:
                    self._controller_port = _free_port()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            config = self._write_config()
            log4j = self.work_dir / "log4j2.properties"
            log4j.write_text(_LOG4J2_PROPERTIES)
            classpath = f"{libs}{os.sep}*"
            jvm = [
                java,
                f"-Xmx{self.heap}",
                "-Xms64m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.logs.dir={self.work_dir}",
                "-cp",
                classpath,
            ]
            if not (self.data_dir / "meta.properties").is_file():
                self._format(jvm, config)
            with self.log_path.open("ab") as fh:
                self._log_offset = fh.tell()
                fh.write(f"=== harness: starting kafka {self.version} ===\n".encode())
                fh.flush()
                self._proc = subprocess.Popen(
                    [*jvm, "kafka.Kafka", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    cwd=self.work_dir,
                    start_new_session=True,  # Ctrl-C in the terminal goes to us, not the JVM
                    preexec_fn=_preexec(),
                )
            try:
                wait_for_kafka(self.bootstrap, self.start_timeout, is_running=lambda: self.running)
            except KafkaHarnessError as exc:
                exit_code = self._proc.poll() if self._proc is not None else None
                self.kill()
                if exit_code is not None:
                    exc = KafkaHarnessError(f"{exc} (exit code {exit_code})")
                tail = self.log_tail()
                key = _key_error_line(self.log_tail(400))
                raise KafkaHarnessError(
                    f"Kafka {self.version} failed to start on {self.bootstrap}: {exc}"
                    + (f" [{key}]" if key else "")
                    + f"\n--- last lines of {self.log_path} ---\n{tail}"
                ) from exc
            return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM, controlled shutdown), SIGKILL if it takes too long."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("Kafka did not stop within %.0fs, sending SIGKILL", timeout)
                    proc.kill()
                    proc.wait(10)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the broker (simulates a crash; the data dir is kept for restart())."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            self._proc = None

    def restart(self, *, hard: bool = False) -> KafkaBroker:
        """Stop (or kill if ``hard``) and start again on the same ports and data dir."""
        with self._lock:
            if hard:
                self.kill()
            else:
                self.stop()
            return self.start()

    def close(self) -> None:
        """Stop the broker and delete its temp dir (unless a work_dir was passed in)."""
        self.stop()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._port = self._controller_port = None

    def __enter__(self) -> KafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "unstarted"
        state = "running" if self.running else "stopped"
        return f"<KafkaBroker {self.version} {where} {state}>"

    # -- helpers -----------------------------------------------------------------------------

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Last ``lines`` lines the broker wrote since its latest start."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self._log_offset)
                tail: deque[bytes] = deque(fh, maxlen=lines)
        except OSError:
            return "(no broker log)"
        return b"".join(tail).decode("utf-8", "replace").rstrip() or "(broker log is empty)"

    def _write_config(self) -> Path:
        port, cport = self.port, self._controller_port
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "true",
            "num.partitions": "4",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted broker cannot register until the controller has
            # expired the dead incarnation's session (default 9 s): keep that short.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "delete.topic.enable": "true",
        }
        props.update(self.extra_config)
        path = self.work_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _format(self, jvm: list[str], config: Path) -> None:
        cmd = [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _random_cluster_id(),
            "-c",
            str(config),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            text = proc.stdout + proc.stderr
            output = text.strip().splitlines()[-_LOG_TAIL_LINES:]
            raise KafkaHarnessError(
                f"formatting Kafka storage failed (exit {proc.returncode}) {_key_error_line(text)}\n"
                + "\n".join(output)
            )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.kafka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker jars (Maven) into the cache and exit")
    run = sub.add_parser("run", help="start a broker, print its bootstrap, run until Ctrl-C")
    run.add_argument("--timeout", type=float, default=60.0, help="startup timeout (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)  # our progress messages, not kafka-python's chatter

    try:
        if args.command == "fetch":
            started = time.monotonic()
            libs = ensure_jars()
            print(f"{libs} ({time.monotonic() - started:.1f}s)")
            return 0

        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        broker = KafkaBroker(start_timeout=args.timeout)
        try:
            started = time.monotonic()
            broker.start()
            print(broker.bootstrap, flush=True)
            print(
                f"Kafka {broker.version} up in {time.monotonic() - started:.1f}s "
                f"(pid {broker.pid}, log {broker.log_path}); Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(1.0):
                if not broker.running:
                    print("broker exited unexpectedly:\n" + broker.log_tail(), file=sys.stderr)
                    return 1
        finally:
            broker.close()
        return 0
    except KafkaHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
