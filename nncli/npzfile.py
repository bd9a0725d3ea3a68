""".npz files read without trusting them.

``np.load`` allocates each member from the shape its .npy header declares before anything
checks that shape: a 1 KB file whose W1 declares 10^6 x 10^6 asks for 8 TB. :func:`read_npz`
gives the same interface (``.files``, ``z[name]``, ``name in z``, a context manager) but
reads each member's header first (``numpy.lib.format.read_magic`` / ``read_array_header_*``)
and refuses, before allocating anything, a member

- holding Python objects (a pickle: never loaded),
- whose shape differs from the one the caller expects for it (``expect={name: shape}``),
- that declares more data than the member holds (its size in the zip directory; a
  deflated member cannot expand more than :data:`MAX_DEFLATE_RATIO` times),
- or that needs more memory than this process has available (:func:`nncli.memory.available_bytes`).

Every refusal is a :class:`NpzMemberError` (a ValueError) naming the member.
"""

from __future__ import annotations

import zipfile
from math import prod
from typing import Optional

import numpy as np
from numpy.lib import format as npformat

#: deflate cannot expand data by more than about 1032:1
MAX_DEFLATE_RATIO = 1032


class NpzMemberError(ValueError):
    """A member of an .npz file that is refused before it is read."""

    def __init__(self, name: str, problem: str, shape=None, expected=None):
        super().__init__(f"tensor '{name}' {problem}")
        self.name, self.problem, self.shape, self.expected = name, problem, shape, expected


class NpzReader:
    """An .npz file's members, each checked against its header before it is allocated."""

    def __init__(self, path, expect: Optional[dict] = None):
        self.path = path
        self._zip = zipfile.ZipFile(path)
        self._members = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i
                         for i in self._zip.infolist()}
        self.files = list(self._members)
        self.expect = {k: tuple(v) for k, v in (expect or {}).items()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._zip.close()

    def __contains__(self, name) -> bool:
        return name in self._members

    def __iter__(self):
        return iter(self.files)

    def header(self, name: str) -> tuple[tuple, bool, np.dtype]:
        """(shape, fortran_order, dtype) from the member's .npy header, reading nothing else."""
        with self._zip.open(self._members[name]) as f:
            return self._header(name, f)

    def _header(self, name, f):
        try:
            version = npformat.read_magic(f)
            if version == (1, 0):
                return npformat.read_array_header_1_0(f)
            if version in ((2, 0), (3, 0)):
                return npformat.read_array_header_2_0(f)
        except ValueError as e:
            raise NpzMemberError(name, f"has no valid .npy header ({e})") from None
        raise NpzMemberError(name, f"has an unknown .npy format version {version}")

    def __getitem__(self, name: str) -> np.ndarray:
        info = self._members[name]  # KeyError, as np.load's
        with self._zip.open(info) as f:
            shape, fortran, dtype = self._header(name, f)
            shape = tuple(int(k) for k in shape)
            if dtype.hasobject:
                raise NpzMemberError(name, "holds Python objects (pickled data), which nncli never loads")
            want = self.expect.get(name)
            if want is not None and shape != want:
                raise NpzMemberError(name, f"has shape {shape}, expected {want}", shape, want)
            count = prod(shape)
            nbytes = count * dtype.itemsize
            room = info.file_size - f.tell()
            ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO
            if nbytes > room or nbytes > info.compress_size * ratio:
                raise NpzMemberError(name, f"declares shape {shape} ({nbytes:,} bytes of {dtype}) but the file holds "
                                           f"only {max(0, min(room, info.compress_size * ratio)):,} bytes for it", shape)
            from .memory import available_bytes, gib

            avail = available_bytes()
            if avail is not None and nbytes > avail:
                raise NpzMemberError(name, f"declares shape {shape}: {gib(nbytes)}, more than the {gib(avail)} "
                                           "of memory available", shape)
            out = np.empty(count, dtype)
            view = memoryview(out.view(np.uint8)) if nbytes else None
            got = 0
            while got < nbytes:
                n = f.readinto(view[got:])
                if not n:
                    raise NpzMemberError(name, f"is truncated ({got:,} of {nbytes:,} bytes)", shape)
                got += n
        return out.reshape(shape[::-1]).transpose() if fortran else out.reshape(shape)


def read_npz(path, expect: Optional[dict] = None) -> NpzReader:
    """``np.load(path, allow_pickle=False)`` for an .npz file, but each member is checked
    against its header (and ``expect``, {name: shape}) before anything is allocated."""
    return NpzReader(path, expect)
