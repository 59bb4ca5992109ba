"""The AWL CGI protocol of web_aid_tool (docs/protocol.md#awl-cgi), and the docs/protocol.md#bugs-web
fixes."""

from __future__ import annotations

import pytest
from aurora.errors import UsageError
from aurora.web import awl


def test_getregs_items_expand_in_request_order_with_duplicates_kept() -> None:
    """docs/protocol.md#awl-cgi example regs=745,3;813, plus a repeated address that the original collapsed
    (docs/protocol.md#bugs-web)."""
    assert [745, 746, 747, 813, 745] == awl.parse_read_regs("745,3;813;745")


def test_hex_addresses_are_accepted_and_garbage_is_refused() -> None:
    """A malformed item is a clear error, not register 0 or an HTTP 500 (docs/protocol.md#bugs-web)."""
    assert [16, 17] == awl.parse_read_regs("0x10,2")
    for bad in ("", "abc", "745,0", "65535,2", "1;;2", "70000"):
        with pytest.raises(UsageError):
            awl.parse_read_regs(bad)


def test_a_read_larger_than_the_limit_is_refused() -> None:
    """The original read any number of registers in one request (docs/protocol.md#bugs-web)."""
    with pytest.raises(UsageError, match="at most"):
        awl.parse_read_regs(f"1,{awl.MAX_REGISTERS + 1}")


def test_abcinfo_and_devices_overwrite_the_regs_the_client_sent() -> None:
    """The aliases of docs/protocol.md#awl-cgi, exactly."""
    info = awl.parse_request({"cmd": "abcinfo", "regs": "1"})
    devices = awl.parse_request({"cmd": "devices", "regs": "1"})
    assert info is not None and devices is not None
    assert (2, 8, 88, 89, 90, 91) == info.reads
    assert (800, 803, 806, 807, 808, 812, 815, 818, 824) == devices.reads


def test_putregs_keeps_first_position_and_last_value_of_a_repeated_address() -> None:
    """Ruby's ordered hash semantics (docs/protocol.md#awl-cgi): 340 is written first, with 5."""
    request = awl.parse_request({"cmd": "putregs", "regs": "340,3;341,4;340,5"})
    assert request is not None and request.is_write
    assert ((340, 5), (341, 4)) == request.writes


def test_a_putregs_item_that_is_not_a_pair_is_refused() -> None:
    """docs/protocol.md#awl-cgi: 'an item that is not a pair raises'; here it is a UsageError the endpoint
    reports."""
    for bad in ("340", "340,3,4", "340,x", "340,70000"):
        with pytest.raises(UsageError):
            awl.parse_write_regs(bad)


def test_an_unknown_or_missing_cmd_is_no_request() -> None:
    """docs/protocol.md#awl-cgi: any other or missing cmd answers an empty body."""
    assert awl.parse_request({"cmd": "reboot"}) is None
    assert awl.parse_request({}) is None


def test_a_read_body_echoes_cmd_id_set_addr_in_that_order_then_err_and_values() -> None:
    """docs/protocol.md#awl-cgi example: cmd=getregs&id=7&err=&values=680,730,730,206."""
    request = awl.parse_request({"regs": "745,3;813", "id": "7", "cmd": "getregs"})
    assert request is not None
    assert "cmd=getregs&id=7&err=&values=680,730,730,206" == awl.read_body(request, [680, 730, 730, 206])
    request = awl.parse_request({"addr": "1", "set": "2", "id": "3", "cmd": "getregs", "regs": "1"})
    assert request is not None
    assert "cmd=getregs&id=3&set=2&addr=1&err=&values=9" == awl.read_body(request, [9])


def test_an_echoed_parameter_cannot_forge_keys_or_markup() -> None:
    """The original echoed parameters unescaped (docs/protocol.md#bugs-web): id=1&err=x would add a key."""
    body = awl.echo_with_error({"cmd": "getregs", "id": "1&err=<b>x</b>"}, "")
    assert "cmd=getregs&id=1%26err%3D%3Cb%3Ex%3C/b%3E&err=" == body


def test_a_failure_is_reported_in_err() -> None:
    """docs/protocol.md#bugs-web: errors were never reported in err."""
    body = awl.echo_with_error({"cmd": "getregs", "id": "4"}, "illegal data address (function 65, code 2)")
    assert "cmd=getregs&id=4&err=illegal data address (function 65, code 2)" == body


def test_config_names_the_serial_number_not_the_port_argument() -> None:
    """docs/protocol.md#bugs-web: the original put ARGV[0] (an mqtt:// URL with its password) in AWL ID."""
    assert (
        "AWL Version=1.6.4&Local Web Version=1.08&SSID=&Units=1&AWL ID=2611000042&AWL ID CRC="
        == awl.config_body(1, "2611000042")
    )


def test_units_are_zero_or_one() -> None:
    """°F or °C; anything else is refused instead of stored."""
    assert 1 == awl.parse_units("1")
    for bad in (None, "", "2", "x"):
        with pytest.raises(UsageError):
            awl.parse_units(bad)
