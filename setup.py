"""Builds poster, compiling src/_fastencode.pyx as poster._fastencode.

Without a C compiler (or Cython) the build still succeeds, pure Python, with
a warning.  POSTER_REQUIRE_EXTENSIONS=1 turns that warning into a failure.
POSTER_NO_EXTENSIONS=1 builds pure Python on purpose: no extension, and a
wheel tagged py3-none-any.

pip shows a build's output only when the build fails or with ``pip install
-v``, so the fallback's warning is also written to the terminal (/dev/tty)
when there is one; without a terminal (CI, a pipe) only ``pip install -v``
shows it.  After the install, ``poster --version`` and ``poster.BACKEND``
say which backend is in use.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1: wheels are tagged by the wheel package
    bdist_wheel = None

PYX = os.path.join("src", "_fastencode.pyx")
REQUIRE = os.environ.get("POSTER_REQUIRE_EXTENSIONS", "") not in ("", "0")
NO_EXTENSIONS = os.environ.get("POSTER_NO_EXTENSIONS", "") not in ("", "0")
#: Set when the extension could not be built and poster falls back to pure Python.
FELL_BACK = []


def warn(message):
    text = f"WARNING: {message}; poster will use its pure-Python backend"
    print(text, file=sys.stderr, flush=True)
    # pip keeps a successful build's output to itself (unless -v): say it on
    # the terminal too, when there is one.
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(f"\n{text}\n")
    except OSError:
        pass


def fail_or_warn(message):
    if REQUIRE:
        sys.exit(f"error: {message} (POSTER_REQUIRE_EXTENSIONS=1)")
    if message not in FELL_BACK:  # the build may be run twice: say it once
        FELL_BACK.append(message)
        warn(message)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python unless the extension is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, broken toolchain
            fail_or_warn(f"building the C extension failed: {exc}")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            fail_or_warn(f"compiling {ext.name} failed: {exc}")


def extensions():
    if NO_EXTENSIONS:
        if REQUIRE:
            sys.exit("error: POSTER_NO_EXTENSIONS=1 and POSTER_REQUIRE_EXTENSIONS=1 contradict each other")
        print("poster: POSTER_NO_EXTENSIONS=1: building pure Python", file=sys.stderr)
        return []
    if not os.path.exists(PYX):
        fail_or_warn(f"{PYX} is missing")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        fail_or_warn("Cython is not installed")
        return []
    debug = os.environ.get("POSTER_DEBUG_BUILD", "") not in ("", "0")
    directives = {"language_level": 3, "embedsignature": True}
    if debug:
        directives.update(boundscheck=True, wraparound=True)
    ext = Extension(
        "poster._fastencode",
        [PYX],
        include_dirs=["src"],
        depends=[os.path.join("src", "_fastencode_scan.h")],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
    )
    try:
        return cythonize([ext], compiler_directives=directives, quiet=True)
    except Exception as exc:
        fail_or_warn(f"cythonizing {PYX} failed: {exc}")
        return []


EXT_MODULES = extensions()
COMMANDS = {"build_ext": OptionalBuildExt} if EXT_MODULES else {}

if bdist_wheel is not None and EXT_MODULES:

    class PureWheelOnFallback(bdist_wheel):
        """A wheel whose extension could not be built holds pure Python only:
        tag it py3-none-any, not for this platform."""

        def run(self):
            if not self.skip_build:
                self.run_command("build")
            if FELL_BACK:
                self.root_is_pure = True
            super().run()

    COMMANDS["bdist_wheel"] = PureWheelOnFallback

# No ext_modules (POSTER_NO_EXTENSIONS=1, or no Cython): the distribution has
# none, so its wheel is py3-none-any.
setup(ext_modules=EXT_MODULES, cmdclass=COMMANDS)
