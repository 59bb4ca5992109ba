"""aurora.urlhandler: pyserial's serial_for_url opens ser2net's ports with this suite's handlers."""

from __future__ import annotations

import socket
import time

import pytest
import serial
from aurora.transport.port_urls import for_pyserial  # importing aurora.transport registers the handlers
from aurora.urlhandler import protocol_rfc2217, protocol_tcp


@pytest.mark.parametrize(
    ("url", "handler"),
    [
        ("tcp://pi.local:2000/", protocol_tcp.Serial),
        ("rfc2217://pi.local:2217/", protocol_rfc2217.Serial),
        ("telnet://pi.local/", protocol_rfc2217.Serial),
    ],
)
def test_network_urls_open_with_our_handlers(url: str, handler: type[serial.SerialBase]) -> None:
    """tcp:// is ours alone; rfc2217:// (and telnet://, mapped to it) find ours before pyserial's."""
    pyserial_url, settings = for_pyserial(url)
    port = serial.serial_for_url(pyserial_url, do_not_open=True, **settings)
    assert type(port) is handler
    assert isinstance(port, serial.SerialBase)
    assert not port.is_open


def test_text_sent_before_a_hang_up_stays_readable_and_close_does_not_sleep() -> None:
    """ser2net writes its refusal into the stream and hangs up (docs/protocol.md#ser2net)."""
    refusal = b"\r\nPort's device already in use\r\n"
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = serial.serial_for_url(f"tcp://127.0.0.1:{server.getsockname()[1]}/", timeout=1.0)
        conn, _ = server.accept()
        conn.sendall(refusal)
        conn.close()
        assert port.read(6) == refusal[:6]
        assert port.pending() == refusal[6:]
        with pytest.raises(serial.SerialException, match="closed by the server"):
            port.read(1)
        started = time.monotonic()
        port.close()
        assert time.monotonic() - started < 0.1  # pyserial's socket:// sleeps 0.3 s here


def test_a_write_arrives_whole_and_one_the_peer_never_reads_times_out() -> None:
    """tcp:// writes on its own (not through pyserial's socket:// module): all of a frame reaches
    the peer, 8E1 settings are accepted as no-ops, and a peer that stops reading cannot hang a
    write given a write_timeout."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"tcp://127.0.0.1:{server.getsockname()[1]}/"
        port = serial.serial_for_url(url, timeout=1.0, baudrate=19200, parity=serial.PARITY_EVEN)
        conn, _ = server.accept()
        with conn:
            frame = bytes(range(256)) * 40
            assert port.write(frame) == len(frame)
            got = bytearray()
            conn.settimeout(5)
            while len(got) < len(frame):
                got += conn.recv(65536)
            assert bytes(got) == frame
            port.write_timeout = 0.2
            started = time.monotonic()
            with pytest.raises(serial.SerialTimeoutException):
                for _ in range(10_000):  # the kernel's buffers fill up, then the write waits
                    port.write(frame)
            assert time.monotonic() - started < 5
        port.close()
