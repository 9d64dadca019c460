"""The two twins of the hot path agree, on every input.

Every check runs the pure-Python reference (``poster._fastencode_py``) and
each available backend on the same random input and compares the results:
the same bytes and values, or the same exception type and message.  The
boundary scanners are also held against a brute-force oracle, so the checks
mean something even where only the reference is installed.
"""

import io
import os

import pytest
from hypothesis import given, strategies as st

from poster import _fastencode_py as reference
from poster.errors import BoundaryCollisionError, ContentSizeError

from conftest import BACKENDS

TWINS = [BACKENDS[name] for name in sorted(BACKENDS)]


@pytest.fixture
def backend():
    """These tests take both twins themselves: run each once, not per backend."""
    return None


def outcome(call, *args):
    """What ``call(*args)`` gives: ("ok", result) or ("raised", type, message)."""
    try:
        return ("ok", call(*args))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def read_block(twin):
    """``read(fileobj, size)`` of a new ``BlockReader`` of ``twin``."""
    return twin.BlockReader().read


def same_everywhere(name, *args):
    """Call ``name`` on every twin with ``args``; assert one outcome, return it."""
    expected = outcome(getattr(reference, name), *args)
    for twin in TWINS:
        assert outcome(getattr(twin, name), *args) == expected, twin.__name__
    return expected


# ---------------------------------------------------------------------------
# Boundary scanning


def oracle(delimiter: bytes, content: bytes) -> int:
    """The first offset holding ``delimiter`` at the start or right after a CR or a LF."""
    for offset in range(len(content)):
        if content.startswith(delimiter, offset) and (offset == 0 or content[offset - 1] in b"\r\n"):
            return offset
    return -1


# Small alphabets make delimiters, LFs and near misses common.
delimiters = st.binary(min_size=1, max_size=40).map(lambda b: b"--" + b) | st.sampled_from(
    [b"-", b"--", b"--a", b"\n", b"--\n--", b"--0123456789abcdef0123456789abcdef"]
)


@st.composite
def contents_with_delimiters(draw, delimiter):
    pieces = draw(st.lists(
        st.sampled_from([b"\n", b"\r", b"-", b"\r\n", b"\t", delimiter, delimiter[:-1], b"\n" + delimiter,
                         b"\r" + delimiter, b"\t" + delimiter])
        | st.binary(max_size=40),
        max_size=30,
    ))
    return b"".join(pieces)


@st.composite
def split_content(draw):
    delimiter = draw(delimiters)
    content = draw(contents_with_delimiters(delimiter))
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=12)))
    blocks = [content[a:b] for a, b in zip([0] + cuts, cuts + [len(content)])]
    wrap = draw(st.sampled_from([bytes, bytearray, memoryview]))
    return delimiter, content, [wrap(block) for block in blocks]


@given(split_content())
def test_scanners_agree_block_by_block(case):
    delimiter, content, blocks = case
    scanners = [reference.BoundaryScanner(delimiter)] + [t.BoundaryScanner(delimiter) for t in TWINS]
    for block in blocks:
        results = {(s.feed(block), s.position) for s in scanners}
        assert len(results) == 1, results
    found = {s.feed(b"") for s in scanners}
    assert found == {oracle(delimiter, content)}
    for scanner in scanners:
        assert scanner.delimiter == delimiter
        scanner.reset()
        assert scanner.position == 0
        assert scanner.feed(content) == oracle(delimiter, content)


@given(st.data())
def test_find_collision_agrees_with_the_oracle(data):
    delimiter = data.draw(delimiters)
    content = data.draw(contents_with_delimiters(delimiter))
    assert same_everywhere("find_collision", delimiter, content) == ("ok", oracle(delimiter, content))


@pytest.mark.parametrize("misses", [0, 1, 7, 8, 9, 40])
@pytest.mark.parametrize("then", [b"", b"\r", b"\n", b"\r\n", b"x"])
@pytest.mark.parametrize("delimiter", [b"--B", b"-", b"--"])
def test_many_delimiters_not_after_a_line_break(misses, then, delimiter):
    # The pure-Python twin passes a few such delimiters over one by one,
    # then searches for CR + and LF + delimiter: the answer is the same.
    content = b"x" + b"a".join([delimiter] * misses) + b"yy" + then + delimiter + b"z" + b"\r" + delimiter
    expected = oracle(delimiter, content)
    assert same_everywhere("find_collision", delimiter, content) == ("ok", expected)
    for cut in (1, 3, len(content) // 2):
        scanners = [reference.BoundaryScanner(delimiter)] + [t.BoundaryScanner(delimiter) for t in TWINS]
        results = {(s.feed(content[:cut]), s.feed(content[cut:])) for s in scanners}
        assert len(results) == 1 and results.pop()[1] == expected, (cut, results)


def test_scanner_on_large_blocks_releases_nothing_wrong():
    # Blocks past the size scanned without the GIL, a delimiter in each place
    # that matters: at the start, across an edge, at the very end.
    delimiter = b"--0123456789abcdef0123456789abcdef"
    block = bytes(range(256)) * 1024
    for content in (
        delimiter + block,
        block + b"\n" + delimiter + block,
        block[:-5] + b"\n" + delimiter + block,
        block * 2 + b"\n" + delimiter,
        block * 3,
    ):
        expected = oracle(delimiter, content)
        for size in (len(block), 100_000, 65_536):
            results = set()
            for twin in [reference] + TWINS:
                scanner = twin.BoundaryScanner(delimiter)
                result = -1
                for start in range(0, len(content), size):
                    result = scanner.feed(content[start:start + size])
                results.add(result)
            assert results == {expected}


bad_arguments = [None, "", "text", 3, 3.5, b"", bytearray(b"--a"), memoryview(b"--a"), object()]


@pytest.mark.parametrize("delimiter", bad_arguments + [b"--a"], ids=repr)
@pytest.mark.parametrize("data", bad_arguments + [b"x\n--a", memoryview(b"ab\n--a\n")[::2]], ids=repr)
def test_scanner_argument_errors_agree(delimiter, data):
    same_everywhere("find_collision", delimiter, data)
    made = [outcome(twin.BoundaryScanner, delimiter)[0::2] for twin in [reference] + TWINS]
    assert len(set(made)) == 1, made
    if made[0] == ("ok",):
        expected = outcome(reference.BoundaryScanner(delimiter).feed, data)
        for twin in TWINS:
            assert outcome(twin.BoundaryScanner(delimiter).feed, data) == expected


# ---------------------------------------------------------------------------
# Header quoting

# Every kind of character the quoting treats differently.
header_text = st.text(
    st.sampled_from('aZ09 -_.~=?"\\\'\t\r\n\x00\x01\x1f\x7f\x80\xe9\u20ac\U0001f600\ud800')
    | st.characters(),
    max_size=20,
)
header_values = st.none() | header_text | header_text.map(lambda t: t.encode("utf-8", "surrogatepass")) \
    | st.binary(max_size=10) | st.sampled_from([3, bytearray(b"ab"), memoryview(b"cd"), ""])


@given(name=header_values, filename=header_values, filetype=header_values, html5=st.sampled_from([False, True, 0, 1, "", "x"]))
def test_render_part_headers_agree(name, filename, filetype, html5):
    same_everywhere("render_part_headers", name, filename, filetype, html5)


@pytest.mark.parametrize("html5", [False, True])
@pytest.mark.parametrize("text", [
    "field", "", " lead", "a\"b", "back\\slash", "it's", "tab\there", "cr\rlf\n", "nul\x00",
    "\x7f", "caf\u00e9", "\u20ac", "\U0001f600", "\ud800", "x" * 200,
    "ends\\", "a=b", "=?", "a=?b?=", "=?utf-8?q?x=5C?=", "caf\u00e9\\", "=", "a=",
])
def test_render_part_headers_examples_agree(text, html5):
    for filetype in (None, "text/csv", text):
        same_everywhere("render_part_headers", text, text, filetype, html5)
        same_everywhere("render_part_headers", text, None, filetype, html5)


class StrSubclass(str):
    pass


def test_render_part_headers_takes_str_subclasses():
    outcome = same_everywhere("render_part_headers", StrSubclass("na\"me"), StrSubclass("f.txt"),
                              StrSubclass("text/csv"), True)
    assert outcome == ("ok", b'Content-Disposition: form-data; name="na%22me"; filename="f.txt"\r\n'
                             b"Content-Type: text/csv\r\n\r\n")


# ---------------------------------------------------------------------------
# Runs of in-memory parts


class Part:
    """What render_value_parts reads from a MultipartParam."""

    def __init__(self, value, headers):
        self._value = value
        self._headers = headers

    def __repr__(self):
        return f"Part({self._value!r}, {self._headers!r})"


part_values = st.none() | st.binary(max_size=60) | st.sampled_from(
    [b"--b", b"x\n--b", b"--", "text", bytearray(b"ba")]
)
part_headers = st.sampled_from([b"H: 1\r\n\r\n", b"", b"Content-Disposition: x\r\n\r\n", "str"])


@given(
    values=st.lists(st.tuples(part_values, part_headers), max_size=12),
    start=st.integers(-2, 14),
    limit=st.integers(-5, 400) | st.sampled_from([2**70, -(2**70)]),
    delimiter=st.sampled_from([b"--b", b"--", b"-", b"--boundary"]),
)
def test_render_value_parts_agree(values, start, limit, delimiter):
    params = [Part(value, headers) for value, headers in values]
    result = same_everywhere("render_value_parts", params, start, delimiter, limit)
    if result[0] == "ok" and start >= 0:
        rendered, stop, collision = result[1]
        expected = b"".join(
            delimiter + b"\r\n" + p._headers + p._value + b"\r\n" for p in params[start:stop]
        )
        assert rendered == expected
        if collision:
            assert reference.find_collision(delimiter, params[stop]._value) >= 0


@pytest.mark.parametrize("args", [
    ((), 0, b"--b", 10),
    ([], "0", b"--b", 10),
    ([], 0, b"--b", None),
    ([], 0, "--b", 10),
    ([], 2**70, b"--b", 10),
    ([Part(b"v", b"h")], True, b"--b", 10),
    ([object()], 0, b"--b", 10),
], ids=repr)
def test_render_value_parts_argument_errors_agree(args):
    same_everywhere("render_value_parts", *args)


text_pair_names = st.text(max_size=10) | st.sampled_from(["a", 'q"', "\\", "n\u00e9", "\ud800", "x\r\ny", "\x00", "a=b", "=?x", "x\\"])
text_pair_values = st.text(max_size=30) | st.binary(max_size=30) | st.sampled_from(
    ["--b", "x\n--b", b"\n--boundary", "\ud800", "\u00e9" * 5, 7, None, bytearray(b"ba")]
)
text_pairs = st.tuples(text_pair_names, text_pair_values) | st.sampled_from(
    [["a", "b"], ("a",), ("a", "b", "c"), (b"a", "b"), "ab", object()]
)


@given(
    pairs=st.lists(text_pairs, max_size=12),
    start=st.integers(-2, 14),
    html5=st.sampled_from([False, True, 0, 1, "", "x"]),
    limit=st.integers(-5, 300) | st.sampled_from([2**70, -(2**70)]),
    delimiter=st.sampled_from([b"--b", b"--", b"-", b"--boundary"]),
)
def test_render_text_pairs_agree(pairs, start, html5, limit, delimiter):
    result = same_everywhere("render_text_pairs", pairs, start, delimiter, html5, limit)
    if result[0] == "ok" and start >= 0:
        rendered, stop = result[1]
        # What the params of those pairs render to, one by one.
        expected = b"".join(
            delimiter + b"\r\n" + reference.render_part_headers(name, None, None, html5)
            + (value.encode() if isinstance(value, str) else value) + b"\r\n"
            for name, value in pairs[start:stop]
        )
        assert rendered == expected
        assert stop >= min(start, len(pairs))
    # Measuring takes the same pairs and gives the rendered length.
    measured = same_everywhere("measure_text_pairs", pairs, start, delimiter, html5, limit)
    if result[0] == "ok":
        assert measured == ("ok", (len(result[1][0]), result[1][1]))
    else:
        assert measured[0] == "raised" and measured[1:] == result[1:]


@pytest.mark.parametrize("args", [
    ((), 0, b"--b", False, 10),
    ([], "0", b"--b", False, 10),
    ([], 0, b"--b", False, None),
    ([], 0, "--b", False, 10),
    ([], -1, b"--b", False, 10),
    ([], 2**70, b"--b", False, 10),
    ([("a", "b")], True, b"--b", False, 10),
], ids=repr)
def test_render_text_pairs_argument_errors_agree(args):
    rendered = same_everywhere("render_text_pairs", *args)
    measured = same_everywhere("measure_text_pairs", *args)
    if rendered[0] == "ok":
        assert measured == ("ok", (len(rendered[1][0]), rendered[1][1]))
    else:
        assert measured == rendered


# ---------------------------------------------------------------------------
# Moving file content


class ReadOnly:
    """A file-like object with only read(), returning at most ``chunk`` bytes a call."""

    def __init__(self, data, chunk):
        self._data = io.BytesIO(data)
        self._chunk = chunk

    def read(self, size=-1):
        if size < 0:
            size = self._chunk
        return self._data.read(min(size, self._chunk))


class ShortReadinto:
    """readinto() that fills at most ``chunk`` bytes a call, as a pipe would."""

    def __init__(self, data, chunk):
        self._data = io.BytesIO(data)
        self._chunk = chunk

    def readinto(self, buffer):
        with memoryview(buffer) as view:
            return self._data.readinto(view[: self._chunk])

    def read(self, size=-1):
        raise AssertionError("read() must not be called when readinto() exists")


def make_sources(kind, data, chunk, tmp_path):
    """Two independent file objects of ``kind`` holding ``data``."""
    if kind == "bytesio":
        return [io.BytesIO(data) for _ in range(2)]
    if kind == "readonly":
        return [ReadOnly(data, chunk) for _ in range(2)]
    if kind == "short-readinto":
        return [ShortReadinto(data, chunk) for _ in range(2)]
    path = tmp_path / "content"
    path.write_bytes(data)
    if kind == "fileio":
        return [io.FileIO(path, "rb") for _ in range(2)]
    return [open(path, "rb") for _ in range(2)]


source_kinds = st.sampled_from(["bytesio", "readonly", "short-readinto", "fileio", "buffered"])


@given(kind=source_kinds, data=st.binary(max_size=3000), chunk=st.integers(1, 700),
       sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=8))
def test_read_block_agrees(tmp_path_factory, kind, data, chunk, sizes):
    for twin in TWINS:
        ours, theirs = make_sources(kind, data, chunk, tmp_path_factory.mktemp("f"))
        try:
            for size in sizes:
                expected = outcome(read_block(reference), ours, size)
                assert outcome(read_block(twin), theirs, size) == expected
                assert expected[0] == "ok"
                assert len(expected[1]) == min(size, len(data))
                data_left = data[len(expected[1]):]
                data = data_left
        finally:
            for f in (ours, theirs):
                getattr(f, "close", lambda: None)()


@given(kind=source_kinds, data=st.binary(max_size=3000), chunk=st.integers(1, 700),
       sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=8),
       wrap=st.sampled_from(["bytearray", "memoryview", "slice", "array"]))
def test_readinto_exact_agrees(tmp_path_factory, kind, data, chunk, sizes, wrap):
    import array

    for twin in TWINS:
        sources = make_sources(kind, data, chunk, tmp_path_factory.mktemp("f"))
        try:
            filled = []
            for module, source in zip((reference, twin), sources):
                results = []
                for size in sizes:
                    if wrap == "array":
                        buffer = array.array("B", bytes(size))
                    else:
                        buffer = bytearray(size + 3)
                        if wrap == "memoryview":
                            buffer = memoryview(buffer)[:size]
                        elif wrap == "slice":
                            buffer = memoryview(buffer)[1:size + 1]
                        else:
                            buffer = buffer[:size]
                    count = module.readinto_exact(source, buffer)
                    results.append((count, bytes(buffer)[:count]))
                filled.append(results)
            assert filled[0] == filled[1]
            got = b"".join(chunk for _, chunk in filled[0])
            assert got == data[: len(got)]
        finally:
            for f in sources:
                getattr(f, "close", lambda: None)()


class Misbehaving:
    """A file object whose read()/readinto() return ``result``."""

    def __init__(self, result, with_readinto):
        self._result = result
        if with_readinto:
            self.readinto = lambda buffer: self._result

    def read(self, size=-1):
        return self._result


@pytest.mark.parametrize("with_readinto", [False, True])
@pytest.mark.parametrize("result", [None, "text", -1, 10**6, 2.5, b"x" * 100, bytearray(b"ab"), True], ids=repr)
def test_misbehaving_files_raise_the_same_errors(result, with_readinto):
    for size in (0, 1, 8):
        expected = outcome(read_block(reference), Misbehaving(result, with_readinto), size)
        for twin in TWINS:
            assert outcome(read_block(twin), Misbehaving(result, with_readinto), size) == expected
        expected = outcome(reference.readinto_exact, Misbehaving(result, with_readinto), bytearray(size))
        for twin in TWINS:
            assert outcome(twin.readinto_exact, Misbehaving(result, with_readinto), bytearray(size)) == expected


@given(
    data=st.lists(st.sampled_from([b"a", b"\n", b"-", b"--b", b"x" * 50]), max_size=400).map(b"".join),
    reads=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 900)), min_size=1, max_size=6),
    delimiter=st.sampled_from([b"--b", b"-", b"--boundary"]),
)
def test_pread_scanned_agrees(tmp_path_factory, data, reads, delimiter):
    path = tmp_path_factory.mktemp("f") / "content"
    path.write_bytes(data)
    with open(path, "rb") as f:
        fd = f.fileno()
        for twin in TWINS:
            expected_scanner, scanner = reference.BoundaryScanner(delimiter), twin.BoundaryScanner(delimiter)
            reader = twin.BlockReader()
            for offset, size in reads:
                got = outcome(reader.pread_scanned, fd, offset, size, scanner)
                block = data[offset:offset + size]
                assert got == ("ok", (block, expected_scanner.feed(block)))
            assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # the position never moved


@given(
    data=st.lists(st.sampled_from([b"a", b"\n", b"-", b"--b", b"x" * 50]), max_size=400).map(b"".join),
    offset=st.integers(0, 3000),
    size=st.integers(0, 3000),
    delimiter=st.sampled_from([b"--b", b"-", b"--boundary"]),
)
def test_pread_last_agrees(tmp_path_factory, data, offset, size, delimiter):
    # The block and scan of pread_scanned, and whether any byte follows it,
    # which the reads find out themselves.
    path = tmp_path_factory.mktemp("f") / "content"
    path.write_bytes(data)
    with open(path, "rb") as f:
        fd = f.fileno()
        block = data[offset:offset + size]
        expected = ("ok", (block, reference.BoundaryScanner(delimiter).feed(block), len(data) > offset + size))
        for twin in TWINS + [reference]:
            scanner = twin.BoundaryScanner(delimiter)
            assert outcome(twin.BlockReader().pread_last, fd, offset, size, scanner) == expected, twin.__name__
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0


def test_pread_last_of_a_long_block_finds_the_byte_after_it(tmp_path):
    data = os.urandom(200_001).replace(b"\n--b", b"xxxx")
    path = tmp_path / "content"
    path.write_bytes(data)
    with open(path, "rb") as f:
        for twin in TWINS + [reference]:
            reader = twin.BlockReader()
            for size, more in ((200_000, True), (200_001, False), (0, True)):
                assert reader.pread_last(f.fileno(), 0, size, twin.BoundaryScanner(b"--b")) == (
                    data[:size], -1, more)


def test_pread_scanned_recycles_and_scans_long_blocks(tmp_path):
    # Blocks long enough to be scanned without the GIL, a collision in the
    # third, and a short last one.
    data = os.urandom(200_000).replace(b"\n--b", b"xxxx")
    data = data[:150_000] + b"\n--b" + data[150_000:]
    path = tmp_path / "content"
    path.write_bytes(data)
    with open(path, "rb") as f:
        for twin in TWINS:
            reader, scanner = twin.BlockReader(), twin.BoundaryScanner(b"--b")
            results = [reader.pread_scanned(f.fileno(), offset, 65536, scanner)
                       for offset in range(0, len(data) + 65536, 65536)]
            assert b"".join(block for block, _ in results) == data
            assert [found for _, found in results] == [-1, -1, 150_001, 150_001, 150_001]
            assert [len(block) for block, _ in results][-2:] == [len(data) - 3 * 65536, 0]


@pytest.mark.parametrize("args", [
    ("3", 0, 8), (-1, 0, 8), (2**40, 0, 8), (None, 0, 8),
    ("fd", -1, 8), ("fd", "0", 8), ("fd", 2**70, 8),
    ("fd", 0, -1), ("fd", 0, 2**70), ("fd", 0, 8.0),
    (99_999, 0, 8),  # not an open descriptor: EBADF from the read
    (99_999, 0, 0),  # nothing to read: no read, no error
], ids=repr)
@pytest.mark.parametrize("scanner", ["scanner", "subclass", None])
def test_pread_scanned_argument_errors_agree(tmp_path, args, scanner):
    path = tmp_path / "content"
    path.write_bytes(b"abc\n--b")

    def make_scanner(twin):
        if scanner == "subclass":
            return type("Scanner", (twin.BoundaryScanner,), {})(b"--b")
        return twin.BoundaryScanner(b"--b") if scanner else None

    with open(path, "rb") as f:
        fd, offset, size = (f.fileno() if a == "fd" else a for a in args)
        for method in ("pread_scanned", "pread_last"):
            results = {
                twin.__name__: outcome(getattr(twin.BlockReader(), method), fd, offset, size, make_scanner(twin))
                for twin in TWINS + [reference]
            }
            assert len(set(results.values())) == 1, (method, results)


def file_content_outcome(twin, source, start, size, blocksize, delimiter, check_growth, *around,
                         hold=False):
    """Everything a FileContent gives: its blocks, then how it ended
    (``problem`` is the error it raised, as its type and message).  With
    ``hold``, it is iterated ``until_last()`` and ``last`` added at the end."""
    try:
        content = twin.FileContent(source, start, size, blocksize, delimiter, check_growth, "part 'f'", *around)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    blocks = []
    problem = None
    try:
        for block in content.until_last() if hold else content:
            blocks.append(bytes(block))
    except ValueError as exc:
        problem = (type(exc), str(exc))
    assert list(content) == []  # ended for good
    if not hold or problem is not None:
        assert content.last is None
    elif content.last is not None:
        blocks.append(bytes(content.last))
    return ("ok", blocks, problem, content.collision, content.position)


@given(
    data=st.lists(st.sampled_from([b"a", b"\n", b"-", b"--b", b"x" * 50]), max_size=300).map(b"".join),
    start=st.integers(0, 40),
    extra=st.integers(-30, 30),
    blocksize=st.integers(1, 300),
    check_growth=st.booleans(),
    by=st.sampled_from(["fd", "read"]),
    # What goes around the content; never scanned, though it may look like a delimiter.
    around=st.sampled_from([(), (b"", b""), (b"H", b""), (b"", b"T"), (b"<head>", b"<tail>"),
                            (b"\r\n--b", b"\r\n--b--\r\n"), (b"\n-", b"")]),
    open_ended=st.booleans(),
    hold=st.booleans(),
)
def test_file_content_agrees(tmp_path_factory, data, start, extra, blocksize, check_growth, by, around,
                             open_ended, hold):
    path = tmp_path_factory.mktemp("f") / "content"
    path.write_bytes(data)
    size = None if open_ended else max(0, len(data) - start + extra)
    results = []
    for twin in [reference] + TWINS:
        with open(path, "rb") as f:
            f.seek(start)
            source = f.fileno() if by == "fd" else (lambda n, f=f: read_block(twin)(f, n))
            results.append(file_content_outcome(twin, source, start, size, blocksize, b"--b", check_growth,
                                                *around, hold=hold))
    assert all(result == results[0] for result in results), results
    status, blocks, problem, collision, position = results[0]
    head, tail = around or (b"", b"")
    content = data[start:] if size is None else data[start:start + size]
    available = max(0, len(data) - start)
    sent = b"".join(blocks)
    assert (head + content).startswith(sent) or (problem is None and sent == head + content + tail)
    if blocks:
        assert blocks[0].startswith(head)
    sent = sent[len(head):]
    found = reference.find_collision(b"--b", content)
    if found >= 0:
        assert problem[0] is BoundaryCollisionError and collision == found
        assert f"part 'f' at byte {found}" in problem[1]
        assert reference.find_collision(b"--b", sent) < 0  # never let out
    elif size is not None and available < size:
        assert problem[0] is ContentSizeError and "shrank" in problem[1]
        assert position == start + available
    elif size is not None and check_growth and available > size:
        assert problem[0] is ContentSizeError and "grew" in problem[1]
    else:
        assert problem is None and sent == content + tail and position == start + len(content)
        assert len(blocks) == max(1 if head + tail else 0, -(-len(content) // max(blocksize, 4)))
    if problem is not None and size:
        assert len(sent) < size  # the block that showed it never left


@pytest.mark.parametrize("around", [(b"", "x"), ("x", b""), (bytearray(b"x"), b""), (b"", None)], ids=repr)
def test_file_content_refuses_a_head_or_tail_not_bytes(tmp_path, around):
    path = tmp_path / "content"
    path.write_bytes(b"abcdefgh")
    with open(path, "rb") as f:
        results = [file_content_outcome(twin, f.fileno(), 0, 8, 4, b"--b", True, *around)
                   for twin in [reference] + TWINS]
    assert all(result == results[0] for result in results), results
    assert results[0][:2] == ("raised", TypeError) and "head and tail must be bytes" in results[0][2]


@pytest.mark.parametrize("args", [
    ("file", 0, 8, 0, b"--b"), ("file", -1, 8, 4, b"--b"), ("file", 0, -1, 4, b"--b"),
    ("file", 0, 2**70, 4, b"--b"), ("file", "0", 8, 4, b"--b"), ("file", 0, 8, 4, b""),
    (-1, 0, 8, 4, b"--b"), (None, 0, 8, 4, b"--b"), (b"abc", 0, 8, 4, b"--b"),
], ids=repr)
def test_file_content_argument_errors_agree(tmp_path, args):
    path = tmp_path / "content"
    path.write_bytes(b"abcdefgh")
    with open(path, "rb") as f:
        source, *rest = args
        source = f.fileno() if source == "file" else source
        results = [file_content_outcome(twin, source, *rest, True) for twin in [reference] + TWINS]
    assert all(result == results[0] for result in results), results


@pytest.mark.parametrize("size", [-1, "8", 8.0, None, 2**70, True], ids=repr)
def test_read_block_size_errors_agree(size):
    for twin in TWINS:
        assert outcome(read_block(twin), io.BytesIO(b"abc"), size) == \
            outcome(read_block(reference), io.BytesIO(b"abc"), size)


@pytest.mark.parametrize("buffer", [
    b"abc", memoryview(b"abc"), "abc", None, 3, memoryview(bytearray(8))[::2],
    memoryview(bytearray(8)).cast("I"), memoryview(bytearray(6)).cast("B", (2, 3)),
], ids=repr)
def test_readinto_exact_buffer_errors_agree(buffer):
    expected = outcome(reference.readinto_exact, io.BytesIO(b"abcdefgh"), buffer)
    for twin in TWINS:
        assert outcome(twin.readinto_exact, io.BytesIO(b"abcdefgh"), buffer) == expected


def test_read_block_view_is_released_after_readinto():
    # A readinto() that keeps the view it was given cannot write through it
    # later: the bytes it filled are immutable once returned.
    kept = []

    class Keeper(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            kept.append(buffer)
            buffer[:3] = b"abc"
            return 3

    for twin in [reference] + TWINS:
        kept.clear()
        block = read_block(twin)(Keeper(), 3)
        assert block == b"abc"
        with pytest.raises(ValueError):
            kept[0][:1] = b"z"
        assert block == b"abc"


def test_read_block_from_a_pipe_gathers_short_reads():
    for twin in [reference] + TWINS:
        read_end, write_end = os.pipe()
        with open(read_end, "rb", buffering=0) as reader, open(write_end, "wb", buffering=0) as writer:
            writer.write(b"0123456789")
            writer.close()
            assert read_block(twin)(reader, 4) == b"0123"
            assert read_block(twin)(reader, 100) == b"456789"
            assert read_block(twin)(reader, 100) == b""


@given(
    pairs=st.lists(text_pairs, max_size=12),
    html5=st.booleans(),
    delimiter=st.sampled_from([b"--b", b"--boundary"]),
    off=st.sampled_from([0, 0, 0, -1, 1]),
)
def test_write_text_pairs_agree(pairs, html5, delimiter, off):
    measured = same_everywhere("measure_text_pairs", pairs, 0, delimiter, html5, 10**6)
    if measured[0] != "ok":
        return
    size, stop = measured[1]
    run = pairs[:stop]
    written = same_everywhere("write_text_pairs", run, delimiter, html5, size + off)
    if off == 0:
        assert written == ("ok", same_everywhere("render_text_pairs", run, 0, delimiter, html5, 10**6)[1][0])
    else:
        assert written[0] == "raised" and written[1] is ValueError


@pytest.mark.parametrize("args", [
    ((), b"--b", False, 0), ([("a", "b")], "--b", False, 10), ([("a", "b")], b"--b", False, "10"),
    ([("a", "b")], b"--b", False, -1), ([["a", "b"]], b"--b", False, 10), ([(b"a", "b")], b"--b", False, 10),
    ([("a", 1)], b"--b", False, 10), ([("a", "\ud800")], b"--b", False, 10), ([("a", "b")], b"", False, 10),
], ids=repr)
def test_write_text_pairs_argument_errors_agree(args):
    assert same_everywhere("write_text_pairs", *args)[0] == "raised"


# ---------------------------------------------------------------------------
# Measuring a file by its path, and knowing it again once opened


def test_measure_file_agrees(tmp_path):
    regular = tmp_path / "f.bin"
    regular.write_bytes(b"x" * 1234)
    st = os.stat(regular)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "not-a-dir").write_bytes(b"")
    os.symlink(regular, tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    cases = {
        "regular": (str(regular), ("ok", (st.st_dev, st.st_ino, 1234))),
        "as bytes": (os.fsencode(regular), ("ok", (st.st_dev, st.st_ino, 1234))),
        "through a link": (str(tmp_path / "link"), ("ok", (st.st_dev, st.st_ino, 1234))),
        "a directory": (str(tmp_path), ("ok", None)),
        "a fifo": (str(tmp_path / "fifo"), ("ok", None)),
    }
    for what, (path, expected) in cases.items():
        assert same_everywhere("measure_file", path) == expected, what
    for path in (str(tmp_path / "missing"), str(tmp_path / "dangling"), str(tmp_path / "not-a-dir" / "f"),
                 str(tmp_path / "nul\0byte"), b"nul\0byte", str(tmp_path / ("\udcff" * 3))):
        assert same_everywhere("measure_file", path)[0] == "raised", path
    for twin in TWINS:  # the very errors of os.stat, with the path named
        with pytest.raises(FileNotFoundError) as caught:
            twin.measure_file(str(tmp_path / "missing"))
        assert caught.value.filename == str(tmp_path / "missing")


def test_measure_file_reads_names_that_are_not_utf8(tmp_path):
    path = os.fsencode(tmp_path) + b"/caf\xe9.bin"
    with open(path, "wb") as f:
        f.write(b"abc")
    st = os.stat(path)
    for name in (path, os.fsdecode(path)):
        assert same_everywhere("measure_file", name) == ("ok", (st.st_dev, st.st_ino, 3))


def test_is_same_file_agrees(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    st = os.stat(path)
    identity = (st.st_dev, st.st_ino, 100)
    fd = os.open(path, os.O_RDONLY)
    directory = os.open(tmp_path, os.O_RDONLY)
    try:
        assert same_everywhere("is_same_file", fd, identity) == ("ok", True)
        for other in [(st.st_dev, st.st_ino, 99), (st.st_dev, st.st_ino + 1, 100), (st.st_dev + 1, st.st_ino, 100),
                      (-1, st.st_ino, 100), (st.st_dev, 2 ** 70, 100)]:
            assert same_everywhere("is_same_file", fd, other) == ("ok", False), other
        os.truncate(path, 50)
        assert same_everywhere("is_same_file", fd, identity) == ("ok", False)
        assert same_everywhere("is_same_file", fd, (st.st_dev, st.st_ino, 50)) == ("ok", True)
        st_dir = os.fstat(directory)
        assert same_everywhere("is_same_file", directory, (st_dir.st_dev, st_dir.st_ino, st_dir.st_size)) == ("ok", False)
    finally:
        os.close(fd)
        os.close(directory)
    for twin in TWINS:  # a descriptor that is not open: fstat's error
        with pytest.raises(OSError) as caught:
            twin.is_same_file(fd, identity)
        assert caught.value.errno == 9


class _Index:
    def __index__(self):
        return 3


def full_outcome(call, *args):
    """``outcome``, with an OSError's errno and filename and the warnings given."""
    import warnings

    with warnings.catch_warnings(record=True) as given:
        warnings.simplefilter("always")
        try:
            result = ("ok", call(*args))
        except OSError as exc:
            result = ("raised", type(exc), str(exc), exc.errno, exc.filename)
        except Exception as exc:
            result = ("raised", type(exc), str(exc))
    return result, [(warning.category, str(warning.message)) for warning in given]


def test_measure_file_and_is_same_file_agree_on_any_argument(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10)
    st = os.stat(path)
    fd = os.open(path, os.O_RDONLY)

    def agree(name, *args):
        expected = full_outcome(getattr(reference, name), *args)
        for twin in TWINS:
            assert full_outcome(getattr(twin, name), *args) == expected, (twin.__name__, args)

    try:
        for odd in [str(path), os.fsencode(path), str(tmp_path / "missing"), fd, True, None, 1.5,
                    bytearray(os.fsencode(path)), memoryview(os.fsencode(path)), path, [str(path)],
                    "\ud800", "", b"", "nul\0"]:
            agree("measure_file", odd)
        good = (st.st_dev, st.st_ino, 10)
        for identity in [good, list(good), good[:2], good + (0,), None, (st.st_dev, st.st_ino, 10.0),
                         (st.st_dev, st.st_ino, 10.5), (st.st_dev, st.st_ino, True), (st.st_dev, None, 10),
                         (str(st.st_dev), st.st_ino, 10), (st.st_dev, st.st_ino, _Index()),
                         (st.st_dev, st.st_ino, -10), (st.st_dev, st.st_ino, 2 ** 64 + 10)]:
            agree("is_same_file", fd, identity)
        for odd_fd in [fd + 0.5, True, None, str(fd), -1, 2 ** 40, 999, _Index()]:
            agree("is_same_file", odd_fd, good)
    finally:
        os.close(fd)
