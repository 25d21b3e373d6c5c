"""`s3://BUCKET/PREFIX` URLs: a remote (where copies go) and a remote object (one copy)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InputError

SCHEME = "s3://"
REMOTE_ENV = "BACKUPKIT_REMOTE"
# S3's own bucket rules (3-63 characters of lower case, digits, dots and hyphens); stricter
# servers refuse the rest themselves.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_remote(ref: str | os.PathLike[str]) -> bool:
    return isinstance(ref, str) and ref.startswith(SCHEME)


def _split(url: str, what: str) -> tuple[str, str]:
    if not url.startswith(SCHEME):
        raise InputError(f"{what} {url!r} is not an s3://BUCKET/PREFIX URL")
    bucket, _, rest = url[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InputError(
            f"{what} {url!r} names no valid bucket: use s3://BUCKET/PREFIX with a bucket name "
            "of 3 to 63 lower-case letters, digits, dots or hyphens"
        )
    if "\x00" in rest or any(part in (".", "..") for part in rest.split("/") if part):
        raise InputError(f"{what} {url!r} has a prefix with '.', '..' or NUL in it")
    return bucket, rest


@dataclass(frozen=True)
class Remote:
    """Where copies go: every copy is the object `PREFIX/<archive name>`."""

    bucket: str
    prefix: str  # no leading or trailing '/'; may be empty

    @classmethod
    def parse(cls, url: str) -> Remote:
        bucket, rest = _split(url, "remote")
        return cls(bucket, "/".join(p for p in rest.split("/") if p))

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    @property
    def key_prefix(self) -> str:
        """What every key of this remote starts with (the prefix and its slash)."""
        return f"{self.prefix}/" if self.prefix else ""

    def object(self, name: str) -> RemoteObject:
        return RemoteObject(self.bucket, self.key_prefix + name)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class RemoteObject:
    """One object in a bucket: an archive given as `s3://BUCKET/KEY`."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> RemoteObject:
        bucket, key = _split(url, "archive")
        if not key or key.endswith("/"):
            raise InputError(
                f"archive {url!r} names no object: give s3://BUCKET/PREFIX/<archive name> "
                "(see `backupkit list --remote s3://BUCKET/PREFIX`)"
            )
        return cls(bucket, key)

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The object's last path part: the archive's file name."""
        return self.key.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url


def remote_from(url: str | None) -> Remote | None:
    """The remote named by `url`, else by $BACKUPKIT_REMOTE, else none."""
    value = url if url is not None else os.environ.get(REMOTE_ENV) or None
    return Remote.parse(value) if value else None
