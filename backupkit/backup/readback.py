"""The backup's proof of its own archive: read the published file back.

Everything the manifest says was established while the archive was written: each database was
checked as a snapshot file, and each member's sha256 was taken from the very bytes fed to zstd.
What is left to prove is that the file on disk decodes to that stream. Its compressed bytes must
hash to the seal computed as they were written, and decoding them must pass zstd's content
checksum (taken over the tar stream as it went in) and give exactly as many bytes. That costs
one decompression, against the full verify's decompression, tar parse and a second sha256 of
every member; `backupkit verify` still does the full pass. The ledger records this proof as a
read-back row, apart from a full verify.

An encrypted archive cannot be decoded here: the machine that backs up holds only public keys.
Its proof is that the file on disk is the ciphertext that was written, byte for byte (its sha256
taken as age wrote it), with an intact age header and a payload as long as the plaintext that
went in; `verify --identity` decrypts it and makes the full pass.
"""

from __future__ import annotations

from pathlib import Path

from ..archive.crypt import ciphertext_defects
from ..archive.reader import read_back
from ..archive.writer import Finished
from ..errors import BackupError, from_os_error
from ..progress import Meter


def read_back_defects(archive: Path, written: Finished, meter: Meter | None = None) -> list[str]:
    """What differs between the published file and what was written; [] when they agree.
    `meter` hears how far into the archive file the read has come."""
    on_read = meter.reached if meter is not None and meter.active else None
    if written.cipher is not None:
        return ciphertext_defects(archive, written.cipher, on_read)
    try:
        decoded, digest, sealed = read_back(archive, on_read)
    except BackupError as err:
        return [str(err)]
    except OSError as err:
        return [str(from_os_error(err, "reading the archive back"))]
    if sealed != written.seal or digest != written.seal:
        return ["archive bytes on disk differ from the bytes written (sha256 mismatch)"]
    if decoded != written.stream_bytes:
        return [f"archive decodes to {decoded} bytes, but {written.stream_bytes} were written"]
    return []
