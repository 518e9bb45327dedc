"""A local MLflow tracking server on PostgreSQL: what ``tracking=server`` points at.

On a cluster, models and runs live in a tracking server every node reaches over HTTP, not in a
SQLite file (unsafe with writers on several nodes). The server keeps runs in PostgreSQL and proxies
artifacts (``--artifacts-destination <root>/mlartifacts``, any filesystem MLflow knows: a folder,
``s3://...``), so no node needs the artifact store's credentials or a shared path.

``python -m mlauto.track.server --dir runs/tracking`` (``make tracking-server``) starts both and stops
both on Ctrl-C. The test suite's fixture uses the same functions. PostgreSQL refuses to run as root,
so as root the cluster is created and run as the ``postgres`` OS user.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PG_BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin",
               "/usr/local/bin", "/usr/bin")
PG_USER = "postgres"  # the OS user PostgreSQL runs as when this process is root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_binary(name: str) -> str:
    """``initdb``, ``pg_ctl``...: from Debian's versioned folder, else PATH."""
    for folder in PG_BIN_DIRS:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install PostgreSQL (Debian: apt-get install -y postgresql)")
    return found


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``directory`` on 127.0.0.1:``port`` (trust auth, local only)."""

    directory: Path
    port: int
    user: str = "mlauto"
    database: str = "mlauto"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3), as MLflow and the SQL data source take it."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> "Postgres":
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, PG_USER, PG_USER)
        if not (data / "PG_VERSION").exists():
            subprocess.run(_as_pg_user([pg_binary("initdb"), "-D", str(data), "-U", self.user, "-A", "trust",
                                        "--no-sync"]), check=True, capture_output=True)
        subprocess.run(_as_pg_user([pg_binary("pg_ctl"), "-D", str(data), "-l", str(self.directory / "postgres.log"),
                                    "-w", "-t", "60", "-o", f"-p {self.port} -k {self.directory} -h 127.0.0.1",
                                    "start"]), check=True, capture_output=True)
        created = subprocess.run(_as_pg_user([pg_binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                              "-U", self.user, self.database]), capture_output=True, text=True)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"createdb failed: {created.stderr.strip()}")
        logger.info("PostgreSQL on 127.0.0.1:%d (data in %s)", self.port, data)
        return self

    def stop(self) -> None:
        subprocess.run(_as_pg_user([pg_binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w",
                                    "stop"]), capture_output=True)


@dataclass
class MlflowServer:
    """``mlflow server`` with a SQL backend and proxied artifacts."""

    backend_uri: str
    artifacts_destination: str
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 120.0, log: str | None = None) -> "MlflowServer":
        mlflow = str(Path(sys.executable).parent / "mlflow")
        out = open(log, "ab") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", self.backend_uri, "--artifacts-destination",
             self.artifacts_destination, "--serve-artifacts", "--host", self.host, "--port", str(self.port),
             "--workers", "1"], stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}" + (f"; see {log}" if log else ""))
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        logger.info("MLflow tracking server at %s (runs in %s, artifacts in %s)", self.url,
                                    self.backend_uri.split("@")[-1], self.artifacts_destination)
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="runs/tracking", help="PostgreSQL's data and logs")
    parser.add_argument("--root", default="runs", help="mlauto's root: artifacts go to <root>/mlartifacts")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other nodes")
    parser.add_argument("--pg-port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from mlauto import storage

    pg = Postgres(Path(args.dir).resolve(), args.pg_port or free_port()).start()
    server = None
    try:
        server = MlflowServer(pg.url, storage.join(storage.normalize(args.root), "mlartifacts"), args.port,
                              args.host).start(log=str(Path(args.dir).resolve() / "mlflow.log"))
        logger.info("use it with: mlauto tracking=server tracking.uri=%s   (Ctrl-C stops both)", server.url)
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
