"""Digests computed while a body is produced or sent: no second read.

A body made with ``digest="sha256"`` hashes each part's content as its walk
produces it (:class:`Digests`), and ``body.digests`` lists the results.  A
part made by :meth:`MultipartParam.digest_of` carries the hex digest of an
earlier part of the same body (:class:`DigestSource`): its length is known in
advance, so the body keeps an exact ``Content-Length``.

Hashing is ``hashlib``'s, which releases the GIL for each block of a file
part (blocks are far over the 2 KiB from which it does); ``"crc32c"`` (the
checksum of Google Cloud Storage and S3) comes from the ``google-crc32c``
package, the ``crc32c`` extra.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Iterator, List, Optional, Tuple, final

__all__ = ["check_algorithm", "DigestSource", "Digests", "hashed"]

Hashers = Dict[str, Any]


class _Crc32c:
    """CRC-32C as a hasher: ``update`` and a ``hexdigest`` of 8 hex digits."""

    digest_size = 4

    def __init__(self) -> None:
        try:
            import google_crc32c
        except ImportError:
            raise ValueError(
                "the crc32c digest needs the google-crc32c package: "
                "pip install 'poster-py3[crc32c]'"
            ) from None
        self._checksum: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]

    def update(self, data: Any) -> None:
        self._checksum.update(data if isinstance(data, bytes) else bytes(data))

    def hexdigest(self) -> str:
        return str(self._checksum.hexdigest().decode("ascii"))


def new_hasher(algorithm: str) -> Any:
    """A hasher for ``algorithm``: one of ``hashlib``'s, or ``"crc32c"``."""
    if algorithm.lower() == "crc32c":
        return _Crc32c()
    return hashlib.new(algorithm)


def check_algorithm(algorithm: Any) -> int:
    """Refuse what ``new_hasher`` does not take; the hex digest's length."""
    if not isinstance(algorithm, str):
        raise TypeError(f"a digest algorithm is a str such as 'sha256', not {type(algorithm).__name__}")
    try:
        hasher = new_hasher(algorithm)
    except (ValueError, TypeError) as exc:
        if "crc32c" in str(exc):
            raise
        raise ValueError(
            f"unknown digest algorithm {algorithm!r}; use one of hashlib's, such as "
            "'sha256', 'sha512', 'blake2b' or 'md5', or 'crc32c'"
        ) from None
    if hasher.digest_size == 0:  # shake_128 and shake_256 need a length
        raise ValueError(f"{algorithm!r} has no fixed digest length; use 'sha256' or another")
    return int(hasher.digest_size) * 2


@final  # a body tells it by its exact class (MultipartBody.__init__)
class DigestSource:
    """The content of a :meth:`MultipartParam.digest_of` part: the hex digest
    of ``part``'s content, as the body holding both sent it."""

    __slots__ = ("part", "algorithm")

    def __init__(self, part: Any, algorithm: str) -> None:
        self.part = part
        self.algorithm = algorithm

    def open(self, label: str) -> Any:
        raise ValueError(
            f"{label} is the digest of another part: it can only be sent in a body "
            "that holds that part before it"
        )

    def reset(self) -> None:
        """Nothing to rewind: the digest is made anew by each body."""


class Digests:
    """What one walk of a body hashes, and what it found.

    ``algorithm`` (or None) is hashed for every part, into :attr:`results`
    (``(name, hexdigest)`` in part order); the parts named by ``digest_of``
    parts among ``parts`` are hashed with the algorithm those ask for.
    """

    def __init__(self, algorithm: Optional[str], parts: List[Any]) -> None:
        self.algorithm = algorithm
        self.results: List[Tuple[Optional[str], str]] = []
        self._wanted: Dict[int, List[str]] = {}
        self._found: Dict[Tuple[int, str], str] = {}
        for part in parts:
            source = getattr(part, "_source", None)
            if isinstance(source, DigestSource):
                self._wanted.setdefault(id(source.part), []).append(source.algorithm)

    def hashers_for(self, param: Any) -> Optional[Hashers]:
        """The hashers for ``param``'s content, or None when nothing hashes it."""
        algorithms = list(self._wanted.get(id(param), ()))
        if self.algorithm is not None:
            algorithms.append(self.algorithm)
        if not algorithms:
            return None
        return {algorithm: new_hasher(algorithm) for algorithm in algorithms}

    def finish(self, param: Any, hashers: Optional[Hashers]) -> None:
        """``param``'s content is through: note its digests."""
        if hashers is None:
            return
        for algorithm, hasher in hashers.items():
            self._found[(id(param), algorithm)] = hasher.hexdigest()
        if self.algorithm is not None:
            self.results.append((param._name, self._found[(id(param), self.algorithm)]))

    def finish_value(self, param: Any, value: bytes) -> None:
        """Hash the content of a part held in memory, ``value``."""
        hashers = self.hashers_for(param)
        if hashers is not None:
            for hasher in hashers.values():
                hasher.update(value)
            self.finish(param, hashers)

    def value_of(self, source: DigestSource, label: str) -> bytes:
        """The content of a ``digest_of`` part: the digest of its part, sent earlier."""
        try:
            return self._found[(id(source.part), source.algorithm)].encode("ascii")
        except KeyError:
            raise ValueError(
                f"{label} is the digest of {source.part.label()}, which this body has not "
                "sent before it; put the part first"
            ) from None


def hashed(blocks: Iterator[Any], hashers: Hashers) -> Iterator[Any]:
    """``blocks`` passed on, each fed to every hasher first."""
    updates = [hasher.update for hasher in hashers.values()]
    for block in blocks:
        for update in updates:
            update(block)
        yield block
        del block  # not held while the next is read


def check_order(parts: List[Any]) -> None:
    """Refuse a ``digest_of`` part whose part is not before it in ``parts``."""
    seen = set()
    for part in parts:
        source = getattr(part, "_source", None)
        if isinstance(source, DigestSource) and id(source.part) not in seen:
            raise ValueError(
                f"{part.label()} is the digest of {source.part.label()}, which is not "
                "before it in the body; put the part first, then its digest"
            )
        seen.add(id(part))
