"""Objects under a URL, through fsspec: ``gs://bucket/prefix/`` (gcsfs), ``s3://bucket/prefix/``
(s3fs, also any S3-compatible ``endpoint_url``) or a local directory or file.

Credentials come from the environment, the way each cloud SDK finds them: for S3 the
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or ``AWS_PROFILE``, an instance role...) of
botocore; for GCS Google's application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
the metadata server), or none against the emulator ``STORAGE_EMULATOR_HOST`` names. None is
ever read from the config file.

The filesystem packages are imported here only, when a bucket is first read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

READ_BLOCK = 1024 * 1024
HEAD_BYTES = 1024
"""How much of an object without a generation (a local file) identifies its content."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    """The object's full path as the filesystem names it (``bucket/prefix/file.json``)."""
    size: int
    generation: str
    """GCS's generation, S3's version id or ETag; for a local file, its inode (a file replaced
    by another is another generation; one rewritten in place is told by its size or first bytes)."""
    mtime_ns: int

    @property
    def gzip(self) -> bool:
        return self.name.endswith(".gz")

    @property
    def parquet(self) -> bool:
        return self.name.removesuffix(".gz").endswith(".parquet")


@dataclass(frozen=True)
class Location:
    protocol: str
    """``gs``, ``s3`` or ``file``."""
    root: str
    """The bucket and prefix, or the local path, without the scheme."""


def parse_url(url: str) -> Location:
    for scheme in ("gs", "gcs", "s3", "s3a", "file"):
        if url.startswith(f"{scheme}://"):
            rest = url[len(scheme) + 3 :]
            protocol = {"gcs": "gs", "s3a": "s3"}.get(scheme, scheme)
            return Location(protocol, os.path.abspath(rest) if protocol == "file" else rest.rstrip("/"))
    if "://" in url:
        raise ValueError(f"{url!r}: only gs://, s3:// and local paths are read")
    return Location("file", os.path.abspath(os.path.expanduser(url)))


def filesystem(location: Location, endpoint_url: str | None = None) -> Any:
    """The fsspec filesystem of ``location``; credentials from the environment."""
    if location.protocol == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()
    if location.protocol == "s3":
        import s3fs

        options: dict[str, Any] = {"skip_instance_cache": True}
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        return s3fs.S3FileSystem(**options)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator or endpoint_url:
        # The emulator speaks the JSON API only: no credentials, and none of the gRPC bucket
        # type probes of gcsfs's extended filesystem.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(token="anon", endpoint_url=endpoint_url or emulator, skip_instance_cache=True)
    import gcsfs

    return gcsfs.GCSFileSystem(skip_instance_cache=True)


def _mtime_ns(info: dict[str, Any]) -> int:
    for key in ("mtime", "updated", "LastModified", "last_modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1_000_000) * 1000
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value * 1_000_000) * 1000
        if isinstance(value, str) and value:
            try:
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e6) * 1000
            except ValueError:
                continue
    return 0


def _generation(info: dict[str, Any]) -> str:
    for key in ("generation", "VersionId", "ETag", "etag"):
        value = info.get(key)
        if value not in (None, "", "null"):
            return str(value).strip('"')
    if info.get("ino") is not None:
        return f"ino:{info['ino']}"
    return ""


def _hidden(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith((".", "_"))


class Bucket:
    """The objects under one URL."""

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        self.url = url
        self.location = parse_url(url)
        self.fs = filesystem(self.location, endpoint_url)

    def list(self) -> list[ObjectInfo]:
        """Every object under the URL (the URL itself when it is one), by name; names starting
        with ``.`` or ``_`` (temporaries, ``_SUCCESS`` markers) are left out."""
        self.fs.invalidate_cache()
        root = self.location.root
        try:
            found = self.fs.find(root, detail=True)
        except FileNotFoundError:
            found = {}
        if not found and self.fs.isfile(root):
            found = {root: self.fs.info(root)}
        out = []
        for name, info in found.items():
            if info.get("type", "file") != "file" or _hidden(name):
                continue
            out.append(ObjectInfo(str(name), int(info.get("size") or 0), _generation(info), _mtime_ns(info)))
        return sorted(out, key=lambda o: o.name)

    def open(self, info: ObjectInfo) -> IO[bytes]:
        return self.fs.open(info.name, "rb", block_size=4 * READ_BLOCK)  # type: ignore[no-any-return]

    def head_digest(self, info: ObjectInfo) -> str:
        """A digest of the object's first bytes (raw, compressed or not)."""
        with self.open(info) as raw:
            return hashlib.blake2b(raw.read(HEAD_BYTES), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Line:
    start: int
    """Offset of the line's first byte (in the decompressed stream of a gzip object)."""
    end: int
    """Offset after it and its newline: where reading resumes."""
    data: bytes
    problem: str | None = None
    """Why it is no record, found before parsing (too long, cut by a damaged object)."""
    damaged: bool = False
    """The object cannot be read past this line (a truncated or corrupt gzip stream)."""


GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class Gunzip:
    """A gzip object inflated as it is read, at most ``READ_BLOCK`` of output at a time whatever
    its compression ratio, members one after another. Unlike ``gzip.GzipFile`` it hands out
    everything that inflated before the stream broke off, then raises ``EOFError`` (truncated)
    or ``zlib.error`` (corrupt)."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self._inflate = zlib.decompressobj(wbits=31)
        self._input = b""
        self._pending = b""
        self._failure: BaseException | None = None
        self._started = False

    def read(self, size: int = READ_BLOCK) -> bytes:
        while len(self._pending) < size and self._failure is None:
            if not self._fill():
                break
        out, self._pending = self._pending[:size], self._pending[size:]
        if not out and self._failure is not None:
            raise self._failure
        return out

    def _fill(self) -> bool:
        """Inflate some more into ``_pending``; False at the end of the object."""
        if not self._input:
            self._input = self.raw.read(READ_BLOCK)
            if not self._input:
                if self._started and not self._inflate.eof:
                    self._failure = EOFError("the object ended before the end of its gzip stream")
                return False
        if self._inflate.eof:  # the next member of a multi-member file
            self._inflate = zlib.decompressobj(wbits=31)
        self._started = True
        try:
            data = self._inflate.decompress(self._input, READ_BLOCK)
        except zlib.error as exc:
            self._failure = exc
            return False
        self._input = self._inflate.unconsumed_tail or self._inflate.unused_data
        self._pending += data
        return True


def lines(stream: Readable, start: int, max_line: int) -> Iterator[Line]:
    """The lines of ``stream`` from ``start`` (where it is already positioned), each with its
    offsets (blank ones too, so lines keep their numbers). A line longer than ``max_line`` is
    reported (its first bytes) and skipped, never held whole; a stream that breaks off (a
    truncated gzip object) ends with a damaged line holding what was read of the last one."""
    pos = start
    buffer = b""
    skipping = False  # inside a line too long to keep
    while True:
        try:
            block = stream.read(READ_BLOCK)
        except GZIP_ERRORS as exc:
            yield Line(pos, pos + len(buffer), buffer[:4096], f"damaged gzip stream: {exc}", damaged=True)
            return
        if not block:
            break
        buffer += block
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                break
            data, buffer = buffer[:cut], buffer[cut + 1 :]
            end = pos + cut + 1
            if skipping:
                skipping = False
            else:
                yield Line(pos, end, data)
            pos = end
        if len(buffer) > max_line:
            if not skipping:
                yield Line(pos, pos + len(buffer), buffer[:4096], f"line longer than {max_line} bytes")
                skipping = True
            pos += len(buffer)
            buffer = b""
    if buffer.strip() and not skipping:
        yield Line(pos, pos + len(buffer), buffer)


def skip(stream: Readable, count: int) -> None:
    """Read and drop ``count`` bytes (resuming inside a gzip stream, which cannot seek)."""
    left = count
    while left > 0:
        block = stream.read(min(left, READ_BLOCK))
        if not block:
            return
        left -= len(block)
