"""JSON in and out, for names that are not valid UTF-8 too.

File names are bytes. Python reads a name that is not valid UTF-8 with `surrogateescape`: each
undecodable byte 0xXY becomes the lone surrogate U+DCXY. Such a string has no UTF-8 encoding,
so it is written as the JSON escape `\\udcXY` (Python's json module does exactly that with
`ensure_ascii`), and read back into the same lone surrogate; `os.fsencode` then gives the
original bytes. Everything else goes through orjson, which is faster and writes plain UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any, *, indent: bool = False) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0)
    except TypeError:
        # Only a lone surrogate (a name that is not UTF-8) makes orjson refuse a str.
        text = json.dumps(obj, ensure_ascii=True, indent=2 if indent else None)
        return text.encode("ascii")


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson.JSONDecodeError is one) for text that is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if b"\\ud" not in (data.encode() if isinstance(data, str) else data).lower():
            raise
        return json.loads(data)
