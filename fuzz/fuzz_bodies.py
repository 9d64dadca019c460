"""Fuzz whole bodies: encode random fields (html5 style) on both backends,
parse them with python-multipart, and get every field back.

Names and filenames exclude '"', CR, LF and NUL (html5 escapes or refuses
them); a backslash and the "=" of "=?" come back as html5 style writes them,
"%5C" and "%3D"; values are any bytes.  Both backends must give the same body.

    python fuzz/fuzz_bodies.py -runs=20000
"""

import io
import sys

import atheris

with atheris.instrument_imports():
    import poster.encode
    from poster import _backend
    from _common import backends, outcome
    from python_multipart.multipart import MultipartParser, parse_options_header

IMPLS = backends()
FORBIDDEN = '"\r\n\x00'
BOUNDARY = b"fuzzboundary"


def clean(text: str) -> str:
    return "".join(c for c in text if c not in FORBIDDEN and not "\ud800" <= c <= "\udfff") or "x"


def parse(body: bytes) -> list:
    boundary = BOUNDARY
    parts: list = []
    state: dict = {}

    def on_part_begin():
        state.update(headers={}, field=bytearray(), value=bytearray(), data=bytearray())

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][bytes(state["field"]).lower()] = bytes(state["value"])
        state["field"], state["value"] = bytearray(), bytearray()

    def on_part_data(data, start, end):
        state["data"] += data[start:end]

    def on_part_end():
        _, options = parse_options_header(state["headers"][b"content-disposition"])
        filename = options.get(b"filename")
        parts.append((options[b"name"].decode("utf-8"), filename and filename.decode("utf-8"), bytes(state["data"])))

    parser = MultipartParser(boundary, callbacks=dict(
        on_part_begin=on_part_begin, on_header_field=on_header_field, on_header_value=on_header_value,
        on_header_end=on_header_end, on_part_data=on_part_data, on_part_end=on_part_end))
    parser.write(body)
    parser.finalize()
    return parts


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    fields = []
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        name = clean(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(1, 20)))
        filename = clean(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(1, 20))) if fdp.ConsumeBool() else None
        fields.append((name, filename, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2000))))
    blocksize = fdp.ConsumeIntInRange(1, 4096)
    results = {}
    for key in IMPLS:
        _backend.select(key)
        results[key] = outcome(encode, fields, blocksize)
    if results["python"] != results["cython"]:
        raise AssertionError(f"backends differ for {fields!r}: {results!r}")
    if results["python"][0] == "error":
        # Only a boundary found in the content may stop a body.
        if results["python"][1] != "BoundaryCollisionError" or not any(b"--" + BOUNDARY in value for *_, value in fields):
            raise AssertionError(f"unexpected error: {results['python']!r}")
        return
    body = results["python"][1]
    if parse(body) != [(spelled(name), filename and spelled(filename), value) for name, filename, value in fields]:
        raise AssertionError(f"fields not recovered: {fields!r}")


def spelled(text: str) -> str:
    """What html5 style writes for a cleaned name or filename."""
    return text.replace("\\", "%5C").replace("=?", "%3D?")


def encode(fields: list, blocksize: int) -> bytes:
    params = [
        poster.encode.MultipartParam(name, value, style="html5") if filename is None else
        poster.encode.MultipartParam(name, fileobj=io.BytesIO(value), filename=filename, style="html5")
        for name, filename, value in fields
    ]
    datagen, headers = poster.encode.multipart_encode(params, boundary=BOUNDARY, blocksize=blocksize)
    body = b"".join(datagen)
    if len(body) != int(headers["Content-Length"]):
        raise AssertionError("body length differs from Content-Length")
    return body


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
