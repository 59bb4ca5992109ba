"""One error tree for everything the suite raises on purpose (docs/architecture.md#errors).

Callers branch with ``except``; each backend translates what it catches into one of these.
"""

from __future__ import annotations


class AuroraError(Exception):
    """Base of every error the suite raises on purpose."""


class UsageError(AuroraError):
    """The user's mistake: a malformed query, an unknown register, an out-of-range value."""


class WriteRefused(UsageError):
    """A write the register map does not allow (not writable, or out of range)."""


class BusError(AuroraError):
    """The line is gone or cannot be opened (device missing, connection refused, port busy)."""


class BusTimeout(BusError, TimeoutError):
    """No complete reply in time; worth another attempt."""


class BrokerError(BusError):
    """The MQTT broker cannot be reached or answered otherwise than asked (aurora.mqtt)."""


class LoginRefused(BrokerError):
    """The broker refused the login (CONNACK with a failure reason)."""


class PublishRefused(BrokerError):
    """The broker refused a message (an MQTT 5 PUBACK with a failure reason: the ACL)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class FrameError(AuroraError):
    """Bytes that are not a valid reply: bad CRC, wrong slave or function, wrong length."""


class Incomplete(FrameError):
    """Not enough bytes yet for a whole frame (internal to the frame parsers)."""


_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    8: "memory parity error",
}


class ExceptionReply(AuroraError):
    """The slave answered with an exception (function | 0x80). Never retried."""

    def __init__(self, function: int, code: int) -> None:
        self.function = function
        self.code = code
        name = _EXCEPTION_NAMES.get(code, f"exception code {code}")
        super().__init__(f"{name} (function {function}, code {code})")


class IllegalFunction(ExceptionReply):
    """Exception code 1: the board does not implement this function (e.g. 65/66 on 17X553 boards)."""


class IllegalAddress(ExceptionReply):
    """Exception code 2: the register does not exist on this unit."""


class MissingRegisters(IllegalAddress):
    """Exception code 2 narrowed down: which registers of a query the unit does not have."""

    def __init__(self, function: int, addresses: list[int], text: str) -> None:
        super().__init__(function, 2)
        self.addresses = addresses
        self.args = (
            f"{text} {'is' if len(addresses) == 1 else 'are'} not on this unit (illegal data address)",
        )


class IllegalValue(ExceptionReply):
    """Exception code 3: a quantity or value the board refuses."""


def exception_for(function: int, code: int) -> ExceptionReply:
    """The typed ExceptionReply for an exception code from the wire."""
    cls: type[ExceptionReply] = {1: IllegalFunction, 2: IllegalAddress, 3: IllegalValue}.get(
        code, ExceptionReply
    )
    return cls(function, code)
