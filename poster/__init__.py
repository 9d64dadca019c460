"""poster: streaming multipart/form-data uploads for Python 3.

A drop-in for poster 0.8.1: :mod:`poster.encode` builds request bodies that
are read from disk as they are sent, in constant memory, byte for byte what
poster 0.8.1 sent.  Its loops over bytes run in a compiled module when it was
built (``poster.BACKEND == "cython"``), else in pure Python (``"python"``);
``POSTER_NO_EXTENSIONS=1`` forces the latter.
"""

from poster import encode
from poster._backend import BACKEND

__version__ = "0.9.0"

#: The version as a tuple of ints, as poster 0.8.1 had it.
version = tuple(int(part) for part in __version__.split("."))

__all__ = ["encode", "BACKEND", "version", "__version__"]
