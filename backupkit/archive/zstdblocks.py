"""Cut zstd frames' compressed bytes so that each piece completes only a few blocks, and none
runs past the end of a frame.

A decompressor hands back everything one input produces, and one megabyte of zstd input can
produce gigabytes (an RLE block is 4 bytes of input for up to 128 KiB of output: a sparse VM
image, or a decompression bomb). A zstd block never decodes to more than 128 KiB (RFC 8878,
Block_Maximum_Size), so feeding the decompressor pieces that complete at most BLOCKS_PER_PIECE
blocks bounds what one call can return, whatever the archive holds. This walks the frame header
and the 3-byte block headers as the bytes arrive; it does not decode anything. A header it
cannot make sense of is left for the decompressor to refuse.

Frames follow each other (an archive is a run of them): every piece that ends a frame says so,
so the reader can start a new decoder there and hash each frame on its own (format.py's seal).
"""

from __future__ import annotations

BLOCKS_PER_PIECE = 32  # at most 4 MiB of output per piece

_FCS_BYTES = (0, 2, 4, 8)
_DICT_BYTES = (0, 1, 2, 4)


class BlockCutter:
    def __init__(self) -> None:
        self._state = "header"
        self._need = 5  # magic and frame header descriptor, then the rest of the header
        self._have = bytearray()  # bytes of a header being read
        self._checksum = False
        self._last = False

    def cut(self, data: bytes) -> list[tuple[bytes, bool]]:
        """`data` split into consecutive pieces, each completing at most BLOCKS_PER_PIECE
        blocks, with whether the piece ends a frame."""
        pieces: list[tuple[bytes, bool]] = []
        start = pos = completed = 0
        n = len(data)
        while pos < n:
            if self._state in ("header", "frame", "block-header", "checksum"):
                take = min(self._need - len(self._have), n - pos)
                self._have += data[pos : pos + take]
                pos += take
                if len(self._have) < self._need:
                    break
                if self._header_done():
                    completed += 1
            else:  # "block": the block's content
                take = min(self._need, n - pos)
                pos += take
                self._need -= take
                if self._need == 0:
                    self._block_done()
                    completed += 1
            if self._state == "end":
                pieces.append((data[start:pos], True))
                start, completed = pos, 0
                self._state, self._need = "header", 5  # the next frame, if any
            elif completed >= BLOCKS_PER_PIECE:
                pieces.append((data[start:pos], False))
                start, completed = pos, 0
        if start < n:
            pieces.append((data[start:], False))
        return pieces

    def _header_done(self) -> bool:
        """A header is whole; move on. True when this ended a block (an empty one)."""
        head = bytes(self._have)
        self._have.clear()
        if self._state == "header":
            fhd = head[4]
            single = bool(fhd & 0x20)
            self._checksum = bool(fhd & 0x04)
            fcs = _FCS_BYTES[fhd >> 6] or (1 if single else 0)
            rest = (0 if single else 1) + _DICT_BYTES[fhd & 0x03] + fcs
            self._state, self._need = ("frame", rest) if rest else ("block-header", 3)
            return False
        if self._state == "frame":
            self._state, self._need = "block-header", 3
            return False
        if self._state == "checksum":
            self._state = "end"
            return False
        value = int.from_bytes(head, "little")
        self._last = bool(value & 1)
        kind = (value >> 1) & 0x03
        size = value >> 3
        body = 1 if kind == 1 else size
        if body == 0:
            self._block_done()
            return True
        self._state, self._need = "block", body
        return False

    def _block_done(self) -> None:
        if self._last:
            self._state, self._need = ("checksum", 4) if self._checksum else ("end", 0)
        else:
            self._state, self._need = "block-header", 3
