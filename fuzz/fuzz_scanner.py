"""Fuzz the boundary scanner: compiled vs pure Python vs a plain reference.

Random content and delimiters (from a small alphabet, so collisions happen),
fed in random block splits: every backend must report the same first
collision offset, and that offset must be where the reference finds it.

    python fuzz/fuzz_scanner.py -runs=20000
"""

import sys

import atheris

with atheris.instrument_imports():
    from _common import backends

IMPLS = backends()
ALPHABET = b"ab-\n\r"


def reference(delimiter: bytes, content: bytes) -> int:
    """The first offset of ``delimiter`` at the start or right after a CR or a LF."""
    for offset in range(len(content)):
        if content.startswith(delimiter, offset) and (offset == 0 or content[offset - 1] in b"\r\n"):
            return offset
    return -1


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    delimiter = b"--" + bytes(ALPHABET[b % len(ALPHABET)] for b in fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 6)) if ALPHABET[b % len(ALPHABET)] not in b"\r\n")
    if delimiter == b"--":
        delimiter = b"--a"
    content = bytes(ALPHABET[b % len(ALPHABET)] for b in fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)))
    cuts = sorted(fdp.ConsumeIntInRange(0, len(content)) for _ in range(fdp.ConsumeIntInRange(0, 8)))
    blocks = [content[start:end] for start, end in zip([0] + cuts, cuts + [len(content)])]
    expected = reference(delimiter, content)
    for name, impl in IMPLS.items():
        scanner = impl.BoundaryScanner(delimiter)
        found = -1
        for block in blocks:
            found = scanner.feed(block)
            if found >= 0:
                break
        if found != expected:
            raise AssertionError(f"{name} scanner found {found}, expected {expected}: {delimiter!r} in {blocks!r}")
        if impl.find_collision(delimiter, content) != expected:
            raise AssertionError(f"{name} find_collision disagrees: {delimiter!r} in {content!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
