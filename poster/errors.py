"""The errors poster raises about a body, its parts and their sources.

Every one is a ``ValueError`` (what poster 0.8.1 raised for bad input), so
``except ValueError`` keeps working; the subclasses say what went wrong.  Both
backends of the hot path raise these very classes.
"""

from __future__ import annotations

__all__ = [
    "BoundaryCollisionError",
    "ContentSizeError",
    "SourceChangedError",
    "SourceInUseError",
    "NotReplayableError",
    "BodyConsumedError",
    "BodyFrozenError",
    "ParamNameMismatchError",
]


class BoundaryCollisionError(ValueError):
    """The boundary appears inside a part's content: ``--`` and the boundary
    at its start, or right after a CR or a LF (where a parser may end the part).

    Raised before any byte of the delimiter that collides is yielded or sent.
    Encode again with another boundary (the default, a random one, is
    :func:`poster.encode.gen_boundary`).
    """


class ContentSizeError(ValueError):
    """A file part's content is not the size that was announced.

    The file ended early, or grew or shrank after its param was made.  Raised
    before the body could be completed, so no request of a wrong length is
    ever finished.
    """


class SourceChangedError(ContentSizeError):
    """The file at a ``from_file`` path is no longer the one that was measured.

    It was replaced (another inode or device), changed size, or is no longer
    a regular file: its content cannot be the one announced.  Raised when its
    part is reached, before any of its content is sent.  Make the param again
    to send the file as it is now.
    """


class SourceInUseError(ValueError):
    """A file object without a descriptor is being read by another body.

    Such an object has one position, so only one body at a time can read it.
    Give each body its own file object, or use
    :meth:`poster.encode.MultipartParam.from_file`.
    """


class NotReplayableError(OSError, ValueError):
    """A part's content was read already and its source cannot be read again
    (a pipe, a generator).

    An ``OSError`` too, as a failed ``seek`` is: urllib3 and requests then
    report an unrewindable body instead of sending a wrong one.
    """


class BodyConsumedError(ValueError):
    """A body was iterated or sent to its end and then iterated again.

    Call ``reset()`` (or ``seek(0)``) first: it rewinds every part.  poster
    0.8.1 yielded nothing here, which left re-sends hanging.
    """


class BodyFrozenError(TypeError):
    """A change to a body's parts after it was encoded.

    A body is a snapshot: its ``Content-Length`` was measured from its parts
    when :func:`poster.encode.multipart_encode` made it.  Encode the new list
    of params to get a body that holds them.
    """


class ParamNameMismatchError(AssertionError, ValueError):
    """A ``MultipartParam`` was given under a name other than its own.

    Both an ``AssertionError`` (what poster 0.8.1 raised) and a ``ValueError``.
    """
