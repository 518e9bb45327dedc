"""One storage root on any filesystem: a local path, a shared mount, or an object-store URI.

Every file mlauto writes under ``root`` (snapshots, clean and quarantine files, profiles, reports,
Tune's results, batch-scoring output) goes through these helpers, so that ``root=s3://bucket/prefix``
(or ``gs://...``) works on a cluster whose nodes share no disk. The filesystem is pyarrow's
(``pyarrow.fs.FileSystem.from_uri``): credentials and endpoint come from the environment as the
standard clients read them (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``...),
never from the config, which gets logged.

A local path is returned absolute and written atomically (temp file, then ``os.replace``); an
object-store write is atomic by nature (the object appears whole when the upload finishes).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import shutil
import tempfile
from typing import IO, Any, Iterator
from urllib.parse import urlparse

import pyarrow.fs as pafs

LOCAL_SCHEMES = ("", "file")


def is_uri(path: str) -> bool:
    """True for a remote filesystem URI (``s3://``, ``gs://``...); a local path or ``file://`` is not."""
    return "://" in str(path) and urlparse(str(path)).scheme not in LOCAL_SCHEMES


def normalize(path: str) -> str:
    """A URI without its trailing slash; a local path (or ``file://`` URI) absolute."""
    path = str(path)
    if is_uri(path):
        return path.rstrip("/")
    if path.startswith("file://"):
        path = urlparse(path).path
    return os.path.abspath(os.path.expanduser(path))


def join(base: str, *parts: str) -> str:
    """``os.path.join`` for local paths, ``/``-joined for URIs."""
    return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_uri(path) else os.path.dirname(os.path.abspath(path))


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_uri(path) else os.path.basename(path)


@functools.lru_cache(maxsize=32)
def _remote(prefix: str) -> pafs.FileSystem:
    return pafs.FileSystem.from_uri(prefix)[0]


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it). One filesystem object per bucket, reused."""
    if not is_uri(path):
        return pafs.LocalFileSystem(), normalize(path)
    parsed = urlparse(path)
    fs = _remote(f"{parsed.scheme}://{parsed.netloc}")
    return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")


def filesystem(path: str) -> pafs.FileSystem:
    return resolve(path)[0]


def _info(path: str) -> pafs.FileInfo:
    fs, p = resolve(path)
    return fs.get_file_info(p)


def exists(path: str) -> bool:
    return _info(path).type != pafs.FileType.NotFound


def isfile(path: str) -> bool:
    return _info(path).type == pafs.FileType.File


def isdir(path: str) -> bool:
    return _info(path).type == pafs.FileType.Directory


def size(path: str) -> int:
    return int(_info(path).size or 0)


def makedirs(path: str) -> None:
    if is_uri(path):  # object stores have no folders; a prefix exists once an object is under it
        return
    os.makedirs(normalize(path), exist_ok=True)


def listdir(path: str) -> list[str]:
    """Names (not paths) directly under ``path``; empty when it does not exist."""
    fs, p = resolve(path)
    selector = pafs.FileSelector(p, allow_not_found=True, recursive=False)
    return sorted(posixpath.basename(i.path.rstrip("/")) for i in fs.get_file_info(selector))


def remove(path: str) -> None:
    """Delete a file; a missing one is fine."""
    fs, p = resolve(path)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(p)


def replace(src: str, dst: str) -> None:
    """Move ``src`` over ``dst`` (atomic on a local or POSIX-shared filesystem)."""
    if not is_uri(src) and not is_uri(dst):
        os.replace(src, dst)
        return
    fs, s = resolve(src)
    fs.move(s, resolve(dst)[1])


def temp_path(path: str) -> str:
    """Where to write ``path`` before :func:`replace` puts it in place: a sibling temp name locally,
    the path itself on an object store (objects appear whole)."""
    return path if is_uri(path) else f"{path}.tmp-{os.getpid()}"


@contextlib.contextmanager
def open_output(path: str) -> Iterator[IO[bytes]]:
    """A binary stream that lands at ``path`` whole or not at all; parent folders are created."""
    makedirs(dirname(path))
    tmp = temp_path(path)
    fs, p = resolve(tmp)
    try:
        with fs.open_output_stream(p) as fh:
            yield fh
        if tmp != path:
            os.replace(tmp, path)
    finally:
        if tmp != path and os.path.exists(tmp):
            os.remove(tmp)


def open_input(path: str) -> IO[bytes]:
    fs, p = resolve(path)
    return fs.open_input_file(p)


def write_bytes(path: str, data: bytes) -> str:
    with open_output(path) as fh:
        fh.write(data)
    return path


def write_text(path: str, text: str) -> str:
    return write_bytes(path, text.encode("utf-8"))


def read_text(path: str) -> str:
    with open_input(path) as fh:
        return fh.read().decode("utf-8")


def write_json(path: str, data: Any) -> str:
    return write_text(path, json.dumps(data, indent=2, default=str))


def read_json(path: str) -> Any:
    """The JSON at ``path``; None when there is no file."""
    try:
        return json.loads(read_text(path))
    except FileNotFoundError:
        return None


def parquet_writer(path: str, schema: Any) -> Any:
    """A ``pyarrow.parquet.ParquetWriter`` writing to ``path`` on its filesystem."""
    import pyarrow.parquet as pq

    fs, p = resolve(path)
    makedirs(dirname(path))
    return pq.ParquetWriter(p, schema, filesystem=fs)


def read_parquet(path: str) -> Any:
    """A pandas DataFrame of the Parquet file at ``path``."""
    import pyarrow.parquet as pq

    fs, p = resolve(path)
    return pq.read_table(p, filesystem=fs).to_pandas()


def write_parquet(frame: Any, path: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, p = resolve(temp_path(path))
    makedirs(dirname(path))
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), p, filesystem=fs)
    if temp_path(path) != path:
        os.replace(temp_path(path), path)
    return path


def write_csv(frame: Any, path: str) -> str:
    return write_text(path, frame.to_csv(index=False))


def new_folder(root: str) -> str:
    """A new, uniquely named folder ``<root>/<YYYYmmdd-HHMMSS>-<random>`` (one per training)."""
    import time
    import uuid

    stamp = time.strftime("%Y%m%d-%H%M%S-")
    if is_uri(root):
        return join(normalize(root), stamp + uuid.uuid4().hex[:8])
    makedirs(root)
    return tempfile.mkdtemp(prefix=stamp, dir=normalize(root))


def upload(local: str, dest: str) -> str:
    """Copy a local file to ``dest`` (any filesystem)."""
    with open(local, "rb") as src, open_output(dest) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file with the content of ``path``: the path itself when local, a temp download otherwise
    (for libraries that only take local files, such as ``mlflow.log_artifact``)."""
    if not is_uri(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mlauto-") as tmp:
        local = os.path.join(tmp, basename(path))
        with open_input(path) as src, open(local, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        yield local


@contextlib.contextmanager
def staged_output(path: str) -> Iterator[str]:
    """A local path to write to; on exit its content lands at ``path`` (for writers that take a local
    file name only, such as HTML or plot writers)."""
    if not is_uri(path):
        makedirs(dirname(path))
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mlauto-") as tmp:
        local = os.path.join(tmp, basename(path))
        yield local
        upload(local, path)


__all__ = ["basename", "dirname", "exists", "filesystem", "is_uri", "isdir", "isfile", "join", "listdir",
           "local_copy", "makedirs", "new_folder", "normalize", "open_input", "open_output", "parquet_writer", "read_json",
           "read_parquet", "read_text", "remove", "replace", "resolve", "size", "staged_output", "temp_path",
           "upload", "write_bytes", "write_csv", "write_json", "write_parquet", "write_text"]
