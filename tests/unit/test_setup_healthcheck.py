"""The container healthchecks read the kernel's socket table instead of connecting."""

from __future__ import annotations

import time
from pathlib import Path

from aurora.setup.healthcheck import LISTEN, Socket, is_connected_to, is_listening, parse_table
from aurora.status import STALE_S, problem, read_status, write_status

# /proc/net/tcp of a bridge container: a listener on 0.0.0.0:4567 (0x11D7), a connection from
# 172.18.0.5:41000 (0xA028) to the broker on 8883 (0x22B3), and one in TIME_WAIT (06) to 8883.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:11D7 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1
   1: 050012AC:A028 040012AC:22B3 01 00000000:00000000 02:000AF6A1 00000000 10001        0 2 1
   2: 050012AC:A029 040012AC:22B3 06 00000000:00000000 03:00001771 00000000     0        0 0 3
"""
# /proc/net/tcp6: the simulator listening on [::]:2000 (0x07D0).
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:07D0 00000000000000000000000000000000:0000 0A 00000000:0
"""


def test_the_tables_are_read_as_ports_and_states() -> None:
    assert Socket(4567, 0, LISTEN) == parse_table(TCP)[0]
    assert [Socket(2000, 0, LISTEN)] == parse_table(TCP6)


def test_listening_means_a_socket_in_listen_state_on_that_port() -> None:
    sockets = parse_table(TCP) + parse_table(TCP6)
    assert is_listening(sockets, 4567)
    assert is_listening(sockets, 2000)
    assert not is_listening(sockets, 8883)  # only a remote port here


def test_connected_means_an_established_connection_to_that_remote_port() -> None:
    """A closed connection lingering in TIME_WAIT must not count as connected."""
    sockets = parse_table(TCP)
    assert is_connected_to(sockets, 8883)
    assert not is_connected_to(sockets[:1] + sockets[2:], 8883)
    assert not is_connected_to(sockets, 4567)


def test_an_empty_or_headless_table_has_no_sockets() -> None:
    assert [] == parse_table("")
    assert [] == parse_table(TCP.splitlines()[0])


def test_the_bridges_status_file_makes_connected_tell_a_working_bridge_from_a_connected_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.status"
    write_status(path, "ready", None)
    doc = read_status(path)
    assert doc is not None and problem(doc) is None
    write_status(path, "alert", "tcp://pi:2000/: ser2net cannot open its serial device")
    doc = read_status(path)
    assert doc is not None
    assert "alert: tcp://pi:2000/: ser2net cannot open its serial device" in str(problem(doc))
    write_status(path, "ready", None)
    doc = read_status(path)
    assert doc is not None
    assert "s old" in str(problem(doc, now=time.time() + STALE_S + 1))  # a stuck main loop
    assert read_status(tmp_path / "none") is None
    path.write_text("{")
    assert read_status(path) is None


def test_write_status_never_raises_on_a_filesystem_it_cannot_write(tmp_path: Path) -> None:
    write_status(tmp_path / "missing-dir" / "bridge.status", "ready", None)  # no exception
