"""The backup's proof of its own archive: read the published file back.

Everything the manifest says was established while the archive was written: each database was
checked as a snapshot file, and each member's sha256 was taken from the very bytes fed to zstd.
What is left to prove is that the file on disk decodes to that stream. Each of its zstd frames
must hash to the sha256 taken as it was written (their list is what the seal holds), and
decoding them must pass zstd's content checksum (taken over the tar stream as it went in) and
give exactly as many bytes. That costs one decompression, against the full verify's
decompression, tar parse and a second sha256 of every member; `backupkit verify` still does the
full pass. The ledger records this proof as a read-back row, apart from a full verify.

Frames copied from an earlier archive (backup/reuse.py) are not decoded again: their bytes were
hashed in the new file, right after the copy, against the sha256 recorded when the earlier
archive wrote them, and that archive's own read-back decoded them; the seal covers their hash.

An encrypted archive cannot be decoded here: the machine that backs up holds only public keys.
Its proof is that the file on disk is the ciphertext that was written, byte for byte (its sha256
taken as age wrote it), with an intact age header and a payload as long as the plaintext that
went in; `verify --identity` decrypts it and makes the full pass.
"""

from __future__ import annotations

from pathlib import Path

from ..archive.crypt import ciphertext_defects
from ..archive.format import frames_digest
from ..archive.reader import read_back
from ..archive.writer import Finished
from ..errors import BackupError, from_os_error


def read_back_defects(archive: Path, written: Finished) -> list[str]:
    """What differs between the published file and what was written; [] when they agree."""
    if written.cipher is not None:
        return ciphertext_defects(archive, written.cipher)
    try:
        decoded, digests, seal = read_back(archive, written.frames, written.copied)
    except BackupError as err:
        return [str(err)]
    except OSError as err:
        return [str(from_os_error(err, "reading the archive back"))]
    sealed = frames_digest(digests)
    if (
        seal is None
        or seal.kind != "frames"
        or seal.digest != written.seal
        or sealed != seal.digest
    ):
        return ["archive bytes on disk differ from the bytes written (sha256 mismatch)"]
    decoded += written.copied_tar_bytes
    if decoded != written.stream_bytes:
        return [f"archive decodes to {decoded} bytes, but {written.stream_bytes} were written"]
    return []
