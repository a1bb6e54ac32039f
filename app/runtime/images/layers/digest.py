"""sha256 of a layer while its bytes stream past (the diff ID, or a blob's digest)."""
from __future__ import annotations

import hashlib
from typing import BinaryIO

from app.runtime.images.layers import CHUNK

class DigestReader:
    """Pass-through reader: every byte read updates a sha256 and is optionally copied to `copy_to`."""

    def __init__(self, stream, copy_to: BinaryIO | None = None):
        self._stream = stream
        self._copy = copy_to
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def _account(self, data) -> None:
        self._hash.update(data)
        self.size += len(data)
        if self._copy is not None:
            self._copy.write(data)

    def read(self, n: int | None = -1) -> bytes:
        data = self._stream.read() if n is None or n < 0 else self._stream.read(n)
        if data:
            self._account(data)
        return data

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def drain(self) -> int:
        """Read (and digest/copy) everything left in the stream; returns the number of bytes."""
        total = 0
        while True:
            data = self.read(CHUNK)
            if not data:
                return total
            total += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        pass
