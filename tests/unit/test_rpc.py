"""The ``$modbus`` JSON protocol and the original's text topics as pure functions (``aurora.rpc``)."""

from __future__ import annotations

import contextlib
import json

import pytest
from aurora import rpc
from aurora.errors import (
    AuroraError,
    BusError,
    BusTimeout,
    ExceptionReply,
    FrameError,
    IllegalAddress,
    IllegalFunction,
    IllegalValue,
    UsageError,
    WriteRefused,
)
from aurora.rpc_client import resolve_path
from hypothesis import given, settings
from hypothesis import strategies as st


def req(**body: object) -> bytes:
    return json.dumps(body).encode()


# ------------------------------------------------------------------ requests


def test_a_read_names_its_function_and_items() -> None:
    """Each read form is one bus transaction with the function code the client asked for."""
    assert rpc.ReadRequest("a", "ranges", ((745, 3), (813, 1))) == rpc.parse_request(
        req(id="a", op="read", ranges=[[745, 3], [813, 1]])
    )
    assert rpc.ReadRequest(7, "registers", ((745, 1), (745, 1))) == rpc.parse_request(
        req(id=7, op="read", registers=[745, 745])
    )
    assert rpc.ReadRequest(None, "holding", ((0, 100),)) == rpc.parse_request(
        req(op="read", holding=[0, 100])
    )


def test_a_query_keeps_fetch_grammar_and_options() -> None:
    request = rpc.parse_request(req(id="q", op="query", query="745-747,813", decode=True, max_age_s=5))
    assert isinstance(request, rpc.QueryRequest)
    assert (745, 746, 747, 813) == request.query.addresses
    assert request.decode and 5.0 == request.max_age_s and not request.skip_missing


def test_a_negative_write_value_is_twos_complement() -> None:
    """Signed registers (temperatures offsets) take -32768..-1 as their raw word."""
    assert rpc.WriteRequest("w", ((340, 3), (401, 0xFFFF)), readback=True) == rpc.parse_request(
        req(id="w", op="write", writes=[[340, 3], [401, -1]], readback=True)
    )


BAD = {
    "not JSON": b"745-747",
    "not UTF-8": b"\xff\xfe{}",
    "a list": b"[1, 2]",
    "NaN": b'{"op": "query", "id": "x", "query": "745", "max_age_s": NaN}',  # not JSON: id unknown
    "no op": req(id="x"),
    "unknown op": req(id="x", op="erase"),
    "unknown key": req(id="x", op="read", ranges=[[745, 1]], fc=65),
    "two read forms": req(id="x", op="read", ranges=[[745, 1]], registers=[745]),
    "no read form": req(id="x", op="read"),
    "address too high": req(id="x", op="read", registers=[65536]),
    "negative address": req(id="x", op="read", registers=[-1]),
    "float address": req(id="x", op="read", registers=[745.0]),
    "bool address": req(id="x", op="read", registers=[True]),
    "count zero": req(id="x", op="read", ranges=[[745, 0]]),
    "count 101": req(id="x", op="read", holding=[0, 101]),
    "past 65535": req(id="x", op="read", ranges=[[65535, 2]]),
    "101 registers in ranges": req(id="x", op="read", ranges=[[0, 100], [200, 1]]),
    "64 pairs": req(id="x", op="read", ranges=[[i * 2, 1] for i in range(64)]),
    "101 registers": req(id="x", op="read", registers=list(range(101))),
    "empty ranges": req(id="x", op="read", ranges=[]),
    "bad query": req(id="x", op="query", query="abc"),
    "backwards query": req(id="x", op="query", query="747-745"),
    "query not a string": req(id="x", op="query", query=745),
    "decode not bool": req(id="x", op="query", query="745", decode="yes"),
    "negative max age": req(id="x", op="query", query="745", max_age_s=-1),
    "empty writes": req(id="x", op="write", writes=[]),
    "write value too big": req(id="x", op="write", writes=[[340, 65536]]),
    "write value too small": req(id="x", op="write", writes=[[340, -32769]]),
    "write not a pair": req(id="x", op="write", writes=[[340]]),
    "too many writes": req(id="x", op="write", writes=[[340, 1]] * 33),
}


@pytest.mark.parametrize("payload", BAD.values(), ids=BAD.keys())
def test_a_malformed_request_is_a_bad_request_that_keeps_its_id(payload: bytes) -> None:
    """The error reply can only reach the right waiter if it echoes the id whenever there was one."""
    with pytest.raises(rpc.BadRequest) as caught:
        rpc.parse_request(payload)
    assert isinstance(caught.value, UsageError)
    expected_id = "x" if payload.startswith(b'{"id": "x"') else None
    assert expected_id == caught.value.request_id


def test_an_oversized_request_is_refused_before_parsing() -> None:
    with pytest.raises(rpc.BadRequest, match="larger than"):
        rpc.parse_request(b" " * (rpc.MAX_PAYLOAD_BYTES + 1))


def test_an_id_must_be_short_text_or_an_integer() -> None:
    with pytest.raises(rpc.BadRequest, match="id must be"):
        rpc.parse_request(req(id="x" * 129, op="ping"))
    with pytest.raises(rpc.BadRequest, match="id must be"):
        rpc.parse_request(req(id=[1], op="ping"))
    assert rpc.PingRequest(12) == rpc.parse_request(req(id=12, op="ping"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_a_bad_request(payload: bytes) -> None:
    with contextlib.suppress(rpc.BadRequest):
        rpc.parse_request(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["read", "query", "write", "ping", "x"])},
        optional={
            "id": _json,
            "ranges": _json,
            "registers": _json,
            "holding": _json,
            "query": st.text(max_size=20) | _json,
            "decode": _json,
            "max_age_s": _json,
            "writes": _json,
            "readback": _json,
        },
    )
)
def test_any_request_shaped_object_parses_or_is_a_bad_request(body: dict[str, object]) -> None:
    """Whatever a client sends, the bridge gets a typed request or a BadRequest, never a crash."""
    try:
        payload = json.dumps(body, allow_nan=True).encode()
    except ValueError:
        return
    try:
        request = rpc.parse_request(payload)
    except rpc.BadRequest:
        return
    if isinstance(request, rpc.ReadRequest):
        assert 1 <= request.count <= 100
    if isinstance(request, rpc.WriteRequest):
        assert all(0 <= a <= 0xFFFF and 0 <= v <= 0xFFFF for a, v in request.writes)


# ------------------------------------------------------------------ replies and errors

ERRORS: list[AuroraError] = [
    UsageError("bad"),
    WriteRefused("register 1 is not writable"),
    IllegalFunction(65, 1),
    IllegalAddress(66, 2),
    IllegalValue(6, 3),
    ExceptionReply(65, 6),
    BusTimeout("no reply"),
    FrameError("crc"),
    BusError("gone"),
]


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_reply_turns_back_into_the_same_exception_type(err: AuroraError) -> None:
    """A client over MQTT branches on the same exception types as a client on the serial line."""
    reply = rpc.parse_reply(rpc.error_reply("r1", err))
    assert "r1" == reply.id and not reply.ok
    assert type(err) is type(reply.error)
    if isinstance(err, ExceptionReply):
        assert isinstance(reply.error, ExceptionReply)
        assert (err.function, err.code) == (reply.error.function, reply.error.code)


def test_error_codes_name_what_went_wrong() -> None:
    assert ["bad_request", "write_refused", "illegal_function", "illegal_address", "illegal_value"] == [
        rpc.error_code(e) for e in ERRORS[:5]
    ]
    assert ["device_exception", "timeout", "frame_error", "bus_down", "internal"] == [
        rpc.error_code(e) for e in [*ERRORS[5:], ValueError("bug")]
    ]
    assert {"code": "internal", "message": "internal error"} == rpc.error_object(ValueError("secret path"))


def test_a_reply_that_is_not_ours_is_a_frame_error() -> None:
    for payload in (b"nope", b"[]", b'{"id": "x"}', b'{"id": [1], "ok": true}'):
        with pytest.raises(FrameError):
            rpc.parse_reply(payload)


def test_a_query_answer_carries_values_failures_and_decoded_text() -> None:
    words = {745: 680, 746: 730}
    body = json.loads(
        rpc.ok_reply(
            "q",
            values=rpc.words_object(words),
            failed=rpc.failed_object({5: IllegalAddress(65, 2)}),
            decoded=rpc.decoded_object(words),
            cached=1,
            transactions=2,
        )
    )
    answer = rpc.query_answer(body)
    assert words == answer.values
    assert isinstance(answer.failed[5], IllegalAddress)
    assert {"name": "Heating Set Point", "value": 68.0, "unit": "°F", "text": "68.0°F"} == answer.decoded[745]
    assert (1, 2) == (answer.cached, answer.transactions)


def test_decoded_values_are_plain_json() -> None:
    """Flag sets become lists, records objects: a web page reads them without knowing Python."""
    decoded = rpc.decoded_object({30: 0x0043, 1146: 0, 1147: 1200, 5: 7})
    assert ["cc", "cc2", "0x0040"] == decoded["30"]["value"]
    assert 1200 == decoded["1146"]["value"]
    assert "1147" not in decoded  # a continuation word is part of 1146
    assert {"name": None, "value": 7, "unit": None, "text": "7 (0x0007)"} == decoded["5"]
    json.dumps(decoded)


# ------------------------------------------------------------------ the original's topics


def test_getregs_keeps_duplicates_and_order() -> None:
    """P3: the original collapsed duplicates and shifted the client's positional mapping."""
    assert ("5b0e", ((745, 3), (813, 1), (745, 1))) == rpc.parse_getregs(b"5b0e:745,3;813;745")
    assert "5b0e:680,730,730,206" == rpc.getregs_reply("5b0e", [680, 730, 730, 206])


@pytest.mark.parametrize(
    "payload",
    [b"745", b":745", b"id:", b"id:abc", b"id:745,0", b"id:745,101", b"id:65536", b"id:0,60;100,50"],
)
def test_a_malformed_getregs_is_refused(payload: bytes) -> None:
    with pytest.raises(UsageError):
        rpc.parse_getregs(payload)


@pytest.mark.parametrize(
    ("payload", "raw"),
    [(b"3", 3), (b"0x5555", 0x5555), (b"0X00ff", 0xFF), (b" 680 ", 680), (b"-1", 0xFFFF), (b"65535", 0xFFFF)],
)
def test_a_set_payload_is_decimal_or_hex(payload: bytes, raw: int) -> None:
    """P1: the original wrote 0 for 0x5555."""
    assert raw == rpc.parse_set_value(payload)


@pytest.mark.parametrize("payload", [b"", b"12abc", b"0x", b"0x12345", b"65536", b"-32769", b"1.5", b"\xff"])
def test_a_set_payload_that_is_not_a_word_is_refused(payload: bytes) -> None:
    """The original wrote 12 for "12abc"."""
    with pytest.raises(UsageError):
        rpc.parse_set_value(payload)


def test_a_set_topic_names_a_decimal_register() -> None:
    assert 340 == rpc.parse_set_register("340")
    for level in ("getregs", "0x10", "65536", "٣", ""):
        with pytest.raises(UsageError):
            rpc.parse_set_register(level)


# ------------------------------------------------------------------ topics and URL paths


def test_topics_put_the_user_then_the_client_id_last_for_mosquittos_percent_u_and_c() -> None:
    base = rpc.modbus_base("homie/aurora-1")
    assert "homie/aurora-1/$modbus/request/fetch/fetch-ab" == rpc.request_topic(base, "fetch", "fetch-ab")
    assert "homie/aurora-1/$modbus/write/admin/admin-ab" == rpc.write_topic(base, "admin", "admin-ab")
    assert "homie/aurora-1/$modbus/response/fetch/fetch-ab" == rpc.response_topic(base, "fetch", "fetch-ab")
    assert "anonymous" == rpc.topic_user(None) and "web" == rpc.topic_user("web")
    assert rpc.valid_client_id("fetch-ab")
    # Any id the broker let a client connect with is answered, however long (issue 11: > 128).
    assert rpc.valid_client_id("x" * 129, base) and rpc.valid_client_id("x" * 60000, base)
    assert not any(rpc.valid_client_id(c, base) for c in ("", "a/b", "a+", "a#", "x" * 65535, "\ud800"))


def test_request_topics_name_their_kind_user_and_client() -> None:
    base = "homie/aurora-1/$modbus"
    read = rpc.parse_request_topic(base, f"{base}/request/fetch/fetch-ab")
    assert read == rpc.RequestTopic("request", "fetch", "fetch-ab")
    assert read is not None and not read.writable and "fetch/fetch-ab" == read.client
    write = rpc.parse_request_topic(base, f"{base}/write/admin/admin-1")
    assert write is not None and write.writable
    for topic in (
        f"{base}/request/fetch-ab",  # the layout before the user level
        f"{base}/request/fetch/a/b",
        f"{base}/request//x",
        f"{base}/request/fetch/",
        f"{base}/response/fetch/fetch-ab",
        f"{base}/writes/admin/a",
        "homie/aurora-2/$modbus/request/fetch/x",
        f"{base}/request/fe+ch/x",
    ):
        assert rpc.parse_request_topic(base, topic) is None, topic


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("homie/aurora-1/$modbus", ("homie", "aurora-1")),
        ("homie/aurora-1", ("homie", "aurora-1")),
        ("homie/aurora-1/$modbus/", ("homie", "aurora-1")),
        ("homie", ("homie", None)),
        ("", ("homie", None)),
        ("$modbus", ("homie", None)),
        ("myroot/", ("myroot", None)),
    ],
)
def test_a_url_path_names_a_device_or_asks_for_discovery(path: str, resolved: tuple[str, str | None]) -> None:
    assert resolved == resolve_path(path)


def test_a_url_path_with_wildcards_or_too_deep_is_a_usage_error() -> None:
    for path in ("homie/+/$modbus", "homie/#", "a/b/c/$modbus"):
        with pytest.raises(UsageError):
            resolve_path(path)
