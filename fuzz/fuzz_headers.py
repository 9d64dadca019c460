"""Fuzz header rendering in both styles: compiled vs pure Python.

Random names, filenames and content types (any code point, lone surrogates,
CR, LF, NUL, quotes, backslashes, long), now and then no name: both
backends give the same bytes or the same error, and a rendered header is
exactly one Content-Disposition line and at most one Content-Type line (a
part without a name: at most an attachment disposition, and a
Content-Type), with no raw CR, LF or NUL in any line and no backslash in the
Content-Disposition line.

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


def check_header(header: bytes, named: bool) -> None:
    if not header.endswith(b"\r\n\r\n"):
        raise AssertionError(f"header does not end in a blank line: {header!r}")
    lines = header[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            raise AssertionError(f"raw CR, LF or NUL in a header line: {line!r}")
    if not named:
        if not lines[-1].startswith(b"Content-Type: "):
            raise AssertionError(f"a part without a name has no Content-Type: {lines!r}")
        if len(lines) > 2 or (len(lines) == 2 and not lines[0].startswith(b'Content-Disposition: attachment; filename="')):
            raise AssertionError(f"unexpected header lines: {lines!r}")
        if b"\\" in lines[0] and len(lines) == 2:
            raise AssertionError(f"a backslash in the disposition: {lines[0]!r}")
        return
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
    if fdp.ConsumeIntInRange(0, 7) == 7:  # (never for a seed that ends before)
        name = None
    results = {key: outcome(impl.render_part_headers, name, filename, filetype, html5) for key, impl in IMPLS.items()}
    if results["python"] != results["cython"]:
        raise AssertionError(f"backends differ for {(name, filename, filetype, html5)!r}: {results!r}")
    if results["python"][0] == "ok":
        check_header(results["python"][1], name is not None)
    elif results["python"][1] not in ("ValueError", "TypeError"):
        raise AssertionError(f"unexpected error: {results['python']!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
