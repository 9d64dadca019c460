"""Types of poster._fastencode, the compiled hot path (twin of poster._fastencode_py)."""

from typing import Any, List, Optional, Tuple

__all__ = [
    "BoundaryScanner",
    "find_collision",
    "render_part_headers",
    "render_value_parts",
    "render_text_pairs",
    "measure_text_pairs",
    "write_text_pairs",
    "BlockReader",
    "FileContent",
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
def measure_text_pairs(
    pairs: List[Any], start: int, delimiter: bytes, html5: Any, limit: int
) -> Tuple[int, int]: ...
def write_text_pairs(pairs: List[Any], delimiter: bytes, html5: Any, size: int) -> bytes: ...

class BlockReader:
    def read(self, fileobj: Any, size: int) -> bytes: ...
    def pread_scanned(
        self, fd: int, offset: int, size: int, scanner: BoundaryScanner
    ) -> Tuple[bytes, int]: ...
    def pread_last(
        self, fd: int, offset: int, size: int, scanner: BoundaryScanner
    ) -> Tuple[bytes, int, bool]: ...

class FileContent:
    position: int
    collision: int
    def __init__(
        self, source: Any, start: int, size: Optional[int], blocksize: int, delimiter: bytes,
        check_growth: Any, label: str, head: bytes = ..., tail: bytes = ...,
    ) -> None: ...
    def __iter__(self) -> FileContent: ...
    def __next__(self) -> Any: ...

def readinto_exact(fileobj: Any, buffer: Any) -> int: ...
