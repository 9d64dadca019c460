"""Fuzz header rendering in both styles: compiled vs pure Python.

Random names, filenames and content types (any code point, lone surrogates,
CR, LF, NUL, quotes, backslashes, long): both backends give the same
bytes or the same error, and a rendered header is exactly one
Content-Disposition line and at most one Content-Type line, with no raw CR,
LF or NUL in any line and no backslash in the Content-Disposition line.

    python fuzz/fuzz_headers.py -runs=20000
"""

import sys

import atheris

with atheris.instrument_imports():
    from _common import backends, outcome

IMPLS = backends()
SPICE = ['"', "\\", "\r", "\n", "\x00", "\r\n", "é", "\N{SNOWMAN}", "\ud800", ";", "=", " "]


def text(fdp: "atheris.FuzzedDataProvider") -> str:
    pieces = []
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        if fdp.ConsumeBool():
            pieces.append(SPICE[fdp.ConsumeIntInRange(0, len(SPICE) - 1)])
        else:
            pieces.append(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 20)))
    if fdp.ConsumeIntInRange(0, 200) == 0:
        pieces.append("x\\" * 4096)  # long: the hostile-input tests go to 64 KiB
    return "".join(pieces)


def check_header(header: bytes) -> None:
    if not header.endswith(b"\r\n\r\n"):
        raise AssertionError(f"header does not end in a blank line: {header!r}")
    lines = header[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            raise AssertionError(f"raw CR, LF or NUL in a header line: {line!r}")
    if not lines[0].startswith(b'Content-Disposition: form-data; name="'):
        raise AssertionError(f"first line is not the disposition: {lines[0]!r}")
    if b"\\" in lines[0]:
        raise AssertionError(f"a backslash in the disposition: {lines[0]!r}")
    if len(lines) > 2 or (len(lines) == 2 and not lines[1].startswith(b"Content-Type: ")):
        raise AssertionError(f"unexpected header lines: {lines!r}")


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = text(fdp)
    filename = text(fdp) if fdp.ConsumeBool() else None
    filetype = text(fdp) if fdp.ConsumeBool() else None
    html5 = fdp.ConsumeBool()
    results = {key: outcome(impl.render_part_headers, name, filename, filetype, html5) for key, impl in IMPLS.items()}
    if results["python"] != results["cython"]:
        raise AssertionError(f"backends differ for {(name, filename, filetype, html5)!r}: {results!r}")
    if results["python"][0] == "ok":
        check_header(results["python"][1])
    elif results["python"][1] not in ("ValueError", "TypeError"):
        raise AssertionError(f"unexpected error: {results['python']!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
