"""Encryption at rest: the age format around the whole archive (docs/encryption.md).

An encrypted archive is the plain archive (its zstd frames and seal) encrypted for one or
more recipients in the age format (age-encryption.org/v1), so stock `age -d -i KEY ARCHIVE |
zstd -dc | tar -x` restores it. Everything about age lives here: which recipients and
identities a run has (options, files, environment), the sink a backup writes its compressed
bytes into, the source verify and restore read plaintext from, the backup's proof of its own
ciphertext, and new identities (`backupkit key new`).

The library is pyrage, bindings to the Rust `age` crate (the reference implementation's
sibling, maintained, interoperable with age and rage). Its `encrypt_io`/`decrypt_io` copy from
one file object to another in fixed-size chunks, so neither direction ever holds an archive in
memory. Both run to completion in one call, so each runs in a thread of its own at one end of
an `os.pipe`: the archive writer writes compressed bytes into the pipe while age reads them out
of it and writes ciphertext to the file; a reader gets plaintext from the pipe that age
decrypts into. pyrage 1.4.0 does not release the GIL itself: it holds it while it encrypts or
decrypts, and it is let go only inside the C-level reads and writes of the file objects it is
given. So the pipe and its reader hold PIPE_BUFFER bytes, which keeps those hand-overs few.

Secrets: an identity is read from its file and kept in pyrage's objects only; no error message,
repr or report ever holds key material, and a recipient is reported by its fingerprint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from pyrage import ssh, x25519

from ..errors import BackupError, EnvironmentFault, InputError, IntegrityError, from_os_error
from ..fsutil import write_all, write_new

AGE_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
RECIPIENTS_ENV = "BACKUPKIT_RECIPIENTS_FILE"
IDENTITY_ENV = "BACKUPKIT_IDENTITY_FILE"
# age's payload: a 16-byte nonce, then chunks of 64 KiB of plaintext, each with a 16-byte tag.
PAYLOAD_NONCE = 16
CHUNK = 64 << 10
TAG = 16
# How much plaintext one read of a pipe end asks for: each read is a GIL hand-over.
PIPE_BUFFER = 1 << 20
# Identity and recipient files hold a few lines; a bigger one is refused before it is read.
MAX_KEY_FILE = 1 << 20

_SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]+$")
_Recipient = x25519.Recipient | ssh.Recipient
_Identity = x25519.Identity | ssh.Identity


def fingerprint(recipient: str) -> str:
    """A short name for a recipient (its public key, comment dropped): `sha256:` and the first
    16 hex digits of the sha256 of its canonical text. Printable anywhere: a public key is no
    secret, and this is shorter. `printf %s KEY | sha256sum | cut -c1-16` gives the same."""
    return "sha256:" + hashlib.sha256(recipient.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Recipients:
    """The public keys an archive is encrypted to, and where they came from."""

    keys: tuple[_Recipient, ...]
    texts: tuple[str, ...]  # canonical public keys (no comments), in the order given
    source: str  # "--encrypt-to", a recipients file's path, or the environment variable's name

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def fingerprints(self) -> list[str]:
        return [fingerprint(t) for t in self.texts]

    def __repr__(self) -> str:
        return f"Recipients({len(self)} from {self.source})"


def _parse_recipient(text: str, where: str) -> tuple[_Recipient, str]:
    words = text.split()
    try:
        if words and words[0] in _SSH_TYPES and len(words) >= 2:
            canonical = f"{words[0]} {words[1]}"
            return ssh.Recipient.from_str(canonical), canonical
        if len(words) == 1 and _AGE_RECIPIENT.match(words[0]):
            return x25519.Recipient.from_str(words[0]), words[0]
    except pyrage.RecipientError as err:
        raise InputError(f"{where}: not a valid recipient ({err})") from None
    # What was given is never echoed: it may be a secret key pasted in the wrong place.
    if text.upper().startswith("AGE-SECRET-KEY-") or "PRIVATE KEY" in text:
        what = "a secret key, not a recipient (never give a secret key to backup)"
    elif words and re.fullmatch(r"(ssh|ecdsa|sk)-[a-z0-9@.-]{1,40}", words[0]):
        what = f"a {words[0]} key, which age does not encrypt to"
    else:
        what = "not a recipient"
    raise InputError(
        f"{where} is {what}: give an age public key (age1...) or an SSH public key "
        "(ssh-ed25519 ... or ssh-rsa ...)"
    )


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as err:
        raise from_os_error(err, f"reading the {what}") from err
    if len(data) > MAX_KEY_FILE:
        raise InputError(f"{what} {path} is implausibly large for a key file")
    return data


def parse_recipients(
    encrypt_to: Sequence[str] = (), recipients_file: str | os.PathLike[str] | None = None
) -> Recipients | None:
    """The recipients of `--encrypt-to` (each one public key) and `--recipients-file` (one
    per line, `#` comments and blank lines ignored, as `age -R` reads it), together; None when
    neither names any. Raises InputError for anything that is not a public key, and for a
    recipients file that names none (a file emptied by mistake must not mean plaintext)."""
    keys: list[_Recipient] = []
    texts: list[str] = []
    sources: list[str] = []
    for i, text in enumerate(encrypt_to):
        key, canonical = _parse_recipient(text.strip(), f"--encrypt-to #{i + 1}")
        keys.append(key)
        texts.append(canonical)
    if encrypt_to:
        sources.append("--encrypt-to")
    if recipients_file is not None:
        path = Path(os.path.abspath(recipients_file))
        data = _read_key_file(path, "recipients file")
        found = 0
        for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, canonical = _parse_recipient(line, f"{path} line {n}")
            keys.append(key)
            texts.append(canonical)
            found += 1
        if not found:
            raise InputError(f"recipients file {path} names no recipient")
        sources.append(os.fspath(path))
    if not keys:
        return None
    # One key given twice is one recipient: age would write two stanzas for it.
    unique = dict(zip(texts, keys, strict=True))
    return Recipients(tuple(unique.values()), tuple(unique), " and ".join(sources))


def resolve_recipients(
    encrypt_to: Sequence[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
    recipients: Recipients | None = None,
) -> Recipients | None:
    """What a run encrypts to: `recipients` if given, else the options, else the file that
    `$BACKUPKIT_RECIPIENTS_FILE` names; None for a plaintext run."""
    if recipients is not None:
        return recipients
    if encrypt_to or recipients_file is not None:
        return parse_recipients(encrypt_to, recipients_file)
    env = os.environ.get(RECIPIENTS_ENV)
    if env:
        found = parse_recipients((), env)
        assert found is not None
        return Recipients(found.keys, found.texts, f"${RECIPIENTS_ENV} ({found.source})")
    return None


class Identities:
    """The secret keys of one identity file, held in pyrage's objects. Its repr names the
    file and a count, never a key."""

    def __init__(self, keys: Sequence[_Identity], source: Path) -> None:
        self.keys = list(keys)
        self.source = source

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"Identities({os.fspath(self.source)!r}, {len(self)} keys)"


def load_identities(path: str | os.PathLike[str]) -> Identities:
    """Read an identity file: age identities (`AGE-SECRET-KEY-1...` lines, `#` comments), as
    `age-keygen` and `backupkit key new` write them, or an unencrypted OpenSSH private key."""
    where = Path(os.path.abspath(path))
    data = _read_key_file(where, "identity file")
    if data.startswith((AGE_MAGIC, ARMOR_MAGIC)):
        raise InputError(
            f"identity file {where} is itself age-encrypted: decrypt it first "
            "(age -d -o key.txt FILE) and pass the plain file"
        )
    if b"-----BEGIN" in data:
        try:
            return Identities([ssh.Identity.from_buffer(data)], where)
        except pyrage.IdentityError:
            raise InputError(
                f"identity file {where} is not an unencrypted SSH private key that age can "
                "use (passphrase-protected keys are not supported: use an age identity)"
            ) from None
    keys: list[_Identity] = []
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-PLUGIN-"):
            raise InputError(f"identity file {where} line {n}: plugin identities are not supported")
        try:
            keys.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # The line may be a mangled secret: say where, never what.
            raise InputError(f"identity file {where} line {n} is not an age identity") from None
    if not keys:
        raise InputError(f"identity file {where} holds no identity")
    return Identities(keys, where)


def resolve_identities(
    identity: str | os.PathLike[str] | Identities | None,
) -> Identities | None:
    """`identity` (a file, or identities already loaded), else the file that
    `$BACKUPKIT_IDENTITY_FILE` names, else None."""
    if isinstance(identity, Identities):
        return identity
    if identity is not None:
        return load_identities(identity)
    env = os.environ.get(IDENTITY_ENV)
    return load_identities(env) if env else None


def is_age_header(head: bytes) -> bool:
    """Does a file that starts with `head` hold an age-encrypted stream?"""
    return head.startswith(AGE_MAGIC) or head.startswith(ARMOR_MAGIC)


def needs_identity(path: os.PathLike[str] | str) -> InputError:
    return InputError(
        f"archive {os.fspath(path)} is encrypted: pass --identity FILE (or set "
        f"${IDENTITY_ENV}) with a key it was encrypted to"
    )


# --- writing -----------------------------------------------------------------------------


def _pipe() -> tuple[int, int]:
    """An os.pipe that holds PIPE_BUFFER bytes where Linux allows it (64 KiB otherwise): each
    time a full pipe blocks its writer, the thread at the other end must take the GIL back,
    and fewer hand-overs measurably shorten an encrypted backup (docs/performance.md)."""
    rfd, wfd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    return rfd, wfd


@dataclass(frozen=True)
class CipherWritten:
    """What an encrypting sink wrote: the sha256 and size of the ciphertext, how many bytes
    of plaintext went in, and to how many recipients."""

    sha256: bytes
    size_bytes: int
    plaintext_bytes: int
    recipients: int


class _HashingFile:
    """Where age writes ciphertext: the archive file, every byte hashed on its way there."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False
        self.error: OSError | None = None  # kept whole: pyrage passes on only its text

    def write(self, data: bytes) -> int:
        if self.closed:
            raise OSError("the archive was abandoned")
        self.digest.update(data)
        self.size += len(data)
        try:
            return self._raw.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self._raw.flush()


class EncryptingSink:
    """A write-only file object: what is written to it reaches `raw` age-encrypted to
    `recipients`. `close()` ends the age stream and returns what was written; a failure in
    the encrypting thread (a full disk) is raised at the next write or at close."""

    def __init__(self, raw: BinaryIO, recipients: Recipients) -> None:
        self._recipients = recipients
        self._cipher = _HashingFile(raw)
        self._error: BaseException | None = None
        self._plain = 0
        rfd, wfd = _pipe()
        self._source = open(rfd, "rb", buffering=PIPE_BUFFER)  # noqa: SIM115 - the thread closes it
        self._wfd: int | None = wfd
        self._thread = threading.Thread(target=self._run, name="encrypt", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._source:
                pyrage.encrypt_io(self._source, self._cipher, list(self._recipients.keys))  # type: ignore[arg-type]
        except BaseException as err:  # reported to the writer, who decides
            self._error = err

    def _failed(self) -> EnvironmentFault:
        err = self._cipher.error or self._error
        if isinstance(err, OSError):
            return from_os_error(err, "writing the encrypted archive")
        return EnvironmentFault(f"encrypting the archive failed: age says {err}")

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._failed()
        if self._wfd is None:
            raise EnvironmentFault("the encrypted archive was already closed")
        try:
            write_all(self._wfd, data)
        except BrokenPipeError:
            self._thread.join()
            raise self._failed() from None
        self._plain += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered on this side of the pipe."""

    def close(self) -> CipherWritten:
        """End the plaintext; wait for age to write its last chunk."""
        self._close_pipe()
        self._thread.join()
        if self._error is not None:
            raise self._failed()
        self._cipher.flush()
        return CipherWritten(
            self._cipher.digest.digest(), self._cipher.size, self._plain, len(self._recipients)
        )

    def abort(self) -> None:
        """Stop without a valid end: the thread stops at its next write."""
        self._cipher.closed = True
        with contextlib.suppress(OSError):
            self._close_pipe()
        self._thread.join(timeout=5)

    def _close_pipe(self) -> None:
        if self._wfd is not None:
            fd, self._wfd = self._wfd, None
            os.close(fd)


# --- reading -----------------------------------------------------------------------------


class DecryptingSource:
    """A read-only file object over the plaintext of the age file `fh`, decrypted with
    `identities` in a thread as it is read. Reading to the end proves every chunk authentic;
    a damaged or tampered chunk raises IntegrityError where it is met, a key that fits no
    recipient raises InputError at the first read. `close()` stops the thread."""

    def __init__(self, fh: Any, identities: Identities, name: str) -> None:
        self._name = name
        self._identities = identities
        self._error: BaseException | None = None
        self._stopping = False
        rfd, wfd = _pipe()
        self._pipe = open(rfd, "rb", buffering=PIPE_BUFFER)  # noqa: SIM115 - closed by close()
        self._fh = fh
        self._sink = open(wfd, "wb", buffering=PIPE_BUFFER)  # noqa: SIM115 - the thread closes it
        self._thread = threading.Thread(target=self._run, name="decrypt", daemon=True)
        self._thread.start()
        self._done = False

    def _run(self) -> None:
        try:
            try:
                pyrage.decrypt_io(self._fh, self._sink, self._identities.keys)  # type: ignore[arg-type]
            finally:
                with contextlib.suppress(OSError):
                    self._sink.close()
        except BaseException as err:  # reported to the reader at the end of the plaintext
            self._error = err

    def _raise_failure(self) -> None:
        err = self._error
        if err is None or self._stopping:
            return
        # A source that failed on its own (a remote stream whose connection broke) says why;
        # age would only see a cut-short ciphertext.
        failure = getattr(self._fh, "failure", None)
        if isinstance(failure, BackupError):
            raise failure
        text = str(err)
        if isinstance(err, pyrage.DecryptError) and "no matching keys" in text.lower():
            raise InputError(
                f"no identity matches: archive {self._name} was not encrypted to any key in "
                f"{os.fspath(self._identities.source)}"
            )
        if isinstance(err, BrokenPipeError):
            return
        if isinstance(err, pyrage.DecryptError | OSError) and not _is_io_failure(err):
            raise IntegrityError(
                f"archive {self._name} is damaged, cut short or tampered with: age cannot "
                f"authenticate its ciphertext ({text})"
            )
        if isinstance(err, OSError):
            raise from_os_error(err, "reading the encrypted archive")
        raise IntegrityError(f"archive {self._name} could not be decrypted: age says {text}")

    def read(self, size: int | None = -1) -> bytes:
        if self._done:
            return b""
        data = self._pipe.read(size if size is not None and size >= 0 else -1)
        if size is None or size < 0 or len(data) < size:
            # The end of the plaintext, or of what age could authenticate: which one?
            self._thread.join()
            self._done = True
            self._raise_failure()
        return data

    def close(self) -> None:
        self._stopping = not self._done
        with contextlib.suppress(OSError):
            self._pipe.close()  # a thread still writing gets EPIPE and stops
        self._thread.join()

    def __enter__(self) -> DecryptingSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _is_io_failure(err: BaseException) -> bool:
    """pyrage reports both a failed read of the file and a chunk that fails authentication
    as OSError; only the first one has an errno."""
    return isinstance(err, OSError) and err.errno is not None


def open_decrypted(fh: Any, identities: Identities | None, name: str) -> DecryptingSource:
    """The plaintext of the age file open as `fh` (the caller keeps `fh` open while reading)."""
    if identities is None:
        raise needs_identity(name)
    return DecryptingSource(fh, identities, name)


# --- the backup's proof of its ciphertext ---------------------------------------------------


def payload_size(plaintext_bytes: int) -> int:
    """The size of age's payload for that much plaintext: a nonce, then every 64 KiB chunk
    with its tag (the last chunk may be short; an empty plaintext is one empty chunk)."""
    chunks = max(1, -(-plaintext_bytes // CHUNK))
    return PAYLOAD_NONCE + plaintext_bytes + chunks * TAG


_STANZA_ARG = re.compile(rb"^[\x21-\x7e]+$")
_B64 = re.compile(rb"^[A-Za-z0-9+/]*$")
MAX_HEADER = 1 << 20


def read_header(fh: BinaryIO) -> tuple[list[str], int]:
    """Parse the age header at the start of `fh` (age-encryption.org/v1): returns the type of
    each recipient stanza and the header's length. Raises IntegrityError for a header that is
    not well-formed. The header MAC needs the file key, so it is not checked here."""
    first = fh.readline(len(AGE_MAGIC))
    if first != AGE_MAGIC:
        raise IntegrityError("age header: the version line is not age-encryption.org/v1")
    size = len(first)
    kinds: list[str] = []
    while True:
        line = fh.readline(MAX_HEADER)
        size += len(line)
        if not line.endswith(b"\n") or size > MAX_HEADER:
            raise IntegrityError("age header is cut short or implausibly long")
        if line.startswith(b"--- "):
            mac = line[4:-1]
            if len(mac) != 43 or not _B64.match(mac):
                raise IntegrityError("age header: the MAC line is malformed")
            return kinds, size
        if not line.startswith(b"-> "):
            raise IntegrityError("age header: expected a recipient stanza or the MAC line")
        args = line[3:-1].split(b" ")
        if not args or not all(_STANZA_ARG.match(a) for a in args):
            raise IntegrityError("age header: a stanza's arguments are malformed")
        kinds.append(args[0].decode("ascii"))
        while True:  # the stanza's body: base64 lines of 64 columns, the last one shorter
            body = fh.readline(MAX_HEADER)
            size += len(body)
            if not body.endswith(b"\n") or len(body) > 65 or not _B64.match(body[:-1]):
                raise IntegrityError("age header: a stanza's body is malformed")
            if len(body) < 65:
                break


def ciphertext_defects(
    path: Path, written: CipherWritten, on_read: Callable[[int], None] | None = None
) -> list[str]:
    """The backup's proof of an encrypted archive, made without any identity: the file on disk
    is byte for byte the ciphertext that was written (sha256 and size), its age header is well
    formed with one stanza per recipient, and its payload is as long as age makes it for the
    plaintext that went in. Decrypting it (`verify --identity`) proves the rest. `on_read`
    hears the bytes read so far."""
    defects: list[str] = []
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            try:
                kinds, header = read_header(fh)
            except IntegrityError as err:
                defects.append(str(err))
                kinds, header = [], 0
            fh.seek(0)
            size = 0
            while chunk := fh.read(PIPE_BUFFER):
                digest.update(chunk)
                size += len(chunk)
                if on_read is not None:
                    on_read(size)
    except OSError as err:
        return [str(from_os_error(err, "reading the archive back"))]
    if size != written.size_bytes or digest.digest() != written.sha256:
        defects.append("archive bytes on disk differ from the bytes written (sha256 mismatch)")
    stanzas = [k for k in kinds if not k.endswith("-grease")]
    if header and len(stanzas) != written.recipients:
        defects.append(
            f"age header has {len(stanzas)} recipient stanzas, but {written.recipients} "
            "recipients were given"
        )
    if header and size - header != payload_size(written.plaintext_bytes):
        defects.append(
            f"age payload is {size - header} bytes, but {written.plaintext_bytes} bytes of "
            "plaintext encrypt to " + str(payload_size(written.plaintext_bytes))
        )
    return defects


# --- keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewIdentity:
    """`backupkit key new`: where the identity was written, and its recipient (public key)."""

    path: Path
    recipient: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.recipient)

    def to_dict(self) -> dict[str, str | bool]:
        return {
            "ok": True,
            "identity_file": os.fspath(self.path),
            "recipient": self.recipient,
            "fingerprint": self.fingerprint,
        }


def new_identity(path: str | os.PathLike[str]) -> NewIdentity:
    """Write a new age X25519 identity to `path` (mode 0600, in age-keygen's format) and return
    its recipient. Never replaces a file: an existing `path` is refused (exit 2), and the file
    appears whole under its name or not at all."""
    where = Path(os.path.abspath(path))
    if os.path.lexists(where):
        raise InputError(f"{where} already exists: refusing to overwrite an identity")
    if not where.parent.is_dir():
        raise InputError(f"directory {where.parent} does not exist")
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {now}\n# public key: {recipient}\n{identity}\n"
    try:
        write_new(where, text.encode(), mode=0o600)
    except FileExistsError:
        raise InputError(f"{where} already exists: refusing to overwrite an identity") from None
    except OSError as err:
        raise from_os_error(err, f"writing the identity {where}") from err
    return NewIdentity(where, recipient)
