"""Types of poster._fastencode, the compiled hot path (twin of poster._fastencode_py)."""

from typing import Any, List, Tuple

__all__ = [
    "BoundaryScanner",
    "find_collision",
    "render_part_headers",
    "render_value_parts",
    "render_text_pairs",
    "read_block",
    "BlockReader",
    "readinto_exact",
]

class BoundaryScanner:
    def __init__(self, delimiter: bytes) -> None: ...
    @property
    def delimiter(self) -> bytes: ...
    @property
    def position(self) -> int: ...
    def reset(self) -> None: ...
    def feed(self, block: Any) -> int: ...

def find_collision(delimiter: bytes, data: Any) -> int: ...
def render_part_headers(
    name: Any, filename: Any = None, filetype: Any = None, html5: bool = False
) -> bytes: ...
def render_value_parts(
    params: List[Any], start: int, delimiter: bytes, limit: int
) -> Tuple[bytes, int, bool]: ...
def render_text_pairs(
    pairs: List[Any], start: int, delimiter: bytes, html5: Any, limit: int
) -> Tuple[bytes, int]: ...
def read_block(fileobj: Any, size: int) -> bytes: ...

class BlockReader:
    def read(self, fileobj: Any, size: int) -> bytes: ...

def readinto_exact(fileobj: Any, buffer: Any) -> int: ...
