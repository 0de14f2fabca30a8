"""Object storage with versions: a local versioned directory (default) or Google Cloud Storage.

Semantics follow GCS object versioning: every ``put`` creates a new generation (a positive integer that
only grows for a key) and keeps the previous one; ``if_generation_match`` is a precondition on the live
generation (0 means "the object must not exist yet"); ``get`` reads the live generation or a given one;
``delete`` removes the object with all its versions (what deleting a user's data needs).
"""

from __future__ import annotations

import fcntl
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit


class StorageError(Exception):
    """Storage failed or is unreachable."""


class ObjectNotFound(StorageError):
    pass


class PreconditionFailed(StorageError):
    """``if_generation_match`` did not hold."""


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageError(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    url: str

    @abstractmethod
    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Store ``data`` as a new generation of ``key``; returns the generation."""

    @abstractmethod
    def get(self, key: str, *, generation: int | None = None) -> bytes: ...

    @abstractmethod
    def generations(self, key: str) -> list[int]:
        """Generations kept for ``key``, oldest first; empty when the key does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` and every version of it; a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Live keys starting with ``prefix``, sorted."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`StorageError` when the bucket is not reachable."""


class LocalObjectStore(ObjectStore):
    """``<root>/<quoted key>/<generation>`` files; a lock file per key serialises writers across processes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{self.root}"

    def _dir(self, key: str) -> Path:
        return self.root / quote(_check_key(key), safe="")

    @contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        directory = self._dir(key)
        with open(self.root / f".{directory.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield directory
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _gens(directory: Path) -> list[int]:
        if not directory.is_dir():
            return []
        return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())

    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        with self._locked(key) as directory:
            gens = self._gens(directory)
            live = gens[-1] if gens else 0
            if if_generation_match is not None and if_generation_match != live:
                raise PreconditionFailed(f"{key}: live generation is {live}, not {if_generation_match}")
            # Microsecond timestamps like GCS, forced above the previous one so generations only grow.
            generation = max(time.time_ns() // 1000, live + 1)
            directory.mkdir(exist_ok=True)
            tmp = directory / f".tmp-{generation}"
            tmp.write_bytes(data)
            os.replace(tmp, directory / str(generation))
            return generation

    def get(self, key: str, *, generation: int | None = None) -> bytes:
        directory = self._dir(key)
        gens = self._gens(directory)
        if not gens or (generation is not None and generation not in gens):
            raise ObjectNotFound(
                f"{key}" + (f" generation {generation}" if generation else "") + " not found"
            )
        return (directory / str(generation or gens[-1])).read_bytes()

    def generations(self, key: str) -> list[int]:
        return self._gens(self._dir(key))

    def delete(self, key: str) -> None:
        with self._locked(key) as directory:
            if directory.is_dir():
                for path in directory.iterdir():
                    path.unlink()
                directory.rmdir()
        (self.root / f".{directory.name}.lock").unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        keys = (unquote(p.name) for p in self.root.iterdir() if p.is_dir() and self._gens(p))
        return sorted(k for k in keys if k.startswith(prefix))

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not a writable directory")


class GcsObjectStore(ObjectStore):
    """A GCS bucket via google-cloud-storage; honours ``STORAGE_EMULATOR_HOST`` like the library does."""

    def __init__(self, bucket: str, client: Any | None = None):
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project="local", credentials=AnonymousCredentials())
            else:
                client = storage.Client()
        self.client = client
        self.bucket = client.bucket(bucket)
        self.url = f"gs://{bucket}"

    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        from google.api_core import exceptions

        blob = self.bucket.blob(_check_key(key))
        try:
            blob.upload_from_string(data, if_generation_match=if_generation_match)
        except exceptions.PreconditionFailed:
            raise PreconditionFailed(f"{key}: live generation is not {if_generation_match}") from None
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"{self.url}/{key}: {type(exc).__name__}") from None
        return int(blob.generation)

    def get(self, key: str, *, generation: int | None = None) -> bytes:
        from google.api_core import exceptions

        try:
            data: bytes = self.bucket.blob(_check_key(key), generation=generation).download_as_bytes()
        except exceptions.NotFound:
            raise ObjectNotFound(
                f"{key}" + (f" generation {generation}" if generation else "") + " not found"
            ) from None
        return data

    def _versions(self, key: str) -> list[Any]:
        return [
            b
            for b in self.client.list_blobs(self.bucket, prefix=_check_key(key), versions=True)
            if b.name == key
        ]

    def generations(self, key: str) -> list[int]:
        return sorted(int(b.generation) for b in self._versions(key))

    def delete(self, key: str) -> None:
        from google.api_core import exceptions

        for blob in self._versions(key):
            with suppress(exceptions.NotFound):
                self.bucket.blob(key, generation=blob.generation).delete()

    def list(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix or None))

    def ping(self) -> None:
        from google.api_core import exceptions

        try:
            if not self.bucket.exists(timeout=2):
                raise StorageError(f"bucket {self.url} does not exist")
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"{self.url}: {type(exc).__name__}") from None


def open_storage(url: str) -> ObjectStore:
    """``file:///abs/dir`` or ``gs://bucket``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path or parts.path == "/":
            raise StorageError("file storage URL needs a directory: file:///abs/dir")
        return LocalObjectStore(parts.path)
    if parts.scheme == "gs":
        if not parts.netloc:
            raise StorageError("gs storage URL needs a bucket: gs://bucket")
        return GcsObjectStore(parts.netloc)
    raise StorageError(f"unsupported storage URL scheme {parts.scheme!r}: use file:// or gs://")
