"""A scripted byte stream standing in for a serial port in unit tests (no sockets, no processes)."""

from __future__ import annotations

import time
from collections.abc import Callable

Script = Callable[[bytes], list[bytes]]


class FakeLine:
    """Each write is answered by ``script(frame)``: a list of byte pieces delivered one read at a time."""

    def __init__(self, script: Script, stale: bytes = b"") -> None:
        self.script = script
        self.written: list[bytes] = []
        self._pending: list[bytes] = [stale] if stale else []
        self.timeout = 0.01
        self.flushes = 0

    @property
    def in_waiting(self) -> int:
        return len(self._pending[0]) if self._pending else 0

    def reset_input_buffer(self) -> None:
        self.flushes += 1
        self._pending.clear()

    def write(self, frame: bytes) -> int:
        self.written.append(bytes(frame))
        self._pending.extend(self.script(bytes(frame)))
        return len(frame)

    def read(self, n: int) -> bytes:
        if not self._pending:
            time.sleep(0.002)
            return b""
        piece = self._pending.pop(0)
        if len(piece) > n:
            self._pending.insert(0, piece[n:])
            piece = piece[:n]
        return piece

    def close(self) -> None:
        pass
