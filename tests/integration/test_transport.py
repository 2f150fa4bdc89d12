"""Transport integration tests (issue 2): HTTP, the WebSocket handshake,
RFC 6455 framing and close rules, keepalive, the auto listener's sniffing,
signals, configuration and the port file.

Most tests run against tests/echo-broker, whose test-only "echo" protocol
answers each chunk it is given with the same bytes as one message (text when
they are UTF-8, binary otherwise) and closes with 1000 "bye" on the chunk
"close". Well-behaved clients use Debian's python3-websockets; malformed input
goes through raw sockets (wsraw.py). Every test that makes a client misbehave
finishes by checking that the same broker still serves a fresh client.
"""

import asyncio
import base64
import http.client
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest
import websockets
import websockets.client
import websockets.exceptions

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   Client, accept_for, build_frame, close_payload, parse_frames,
                   upgrade_request, ws_client)

EURO = "€".encode()          # e2 82 ac
GRIN = "😀".encode()         # f0 9f 98 80
MIB = 1024 * 1024
DEBUG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+Z debug ", re.M)


# ---------------------------------------------------------------- helpers

def run(coro, timeout=10):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def lib_connect(url, subprotocols=("echo",), **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    return websockets.client.connect(
        url, subprotocols=list(subprotocols) if subprotocols else None, **kw)


def assert_serves(b):
    """A fresh, well-behaved client gets its echo, and /healthz answers."""
    async def go():
        async with lib_connect(b.ws_url("/")) as ws:
            assert ws.subprotocol == "echo"
            await ws.send("fresh client")
            assert await ws.recv() == "fresh client"
    run(go())
    port = b.ports.get("auto") or b.ports["ws"]
    with Client(port) as c:
        r = c.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 200, r


def echo_bytes(c, n):
    """Read echoed data messages until n bytes came back. The echo session
    answers each chunk it is given, so a message may come back whole or in
    pieces; a close frame before that fails the test."""
    got, ops = b"", []
    while len(got) < n:
        m = c.read_message()
        assert m.opcode != OP_CLOSE, "broker closed (%r) after %d/%d bytes" % (m, len(got), n)
        got += m.payload
        ops.append(m.opcode)
    assert len(got) == n, got
    return got, ops


def read_until_pong(c):
    """The next pong; data frames read on the way are kept for later."""
    held = []
    while True:
        f = c.read_frame()
        assert f.opcode != OP_CLOSE, "closed while waiting for a pong: %r" % f
        if f.opcode == OP_PONG:
            assert not f.masked
            for h in held:
                c.hold(h)
            return f
        if f.opcode == OP_PING:  # keepalive: answer and go on
            c.send_frame(OP_PONG, f.payload)
        else:
            held.append(f)


def dropped_within(c, seconds):
    """Seconds until the broker ends the connection, or None if it did not
    within the bound (bytes it sends meanwhile are kept in c.buf)."""
    t0 = time.monotonic()
    if c.wait_eof(seconds):
        return time.monotonic() - t0
    return None


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def eb(echo_broker):
    """The echo broker, checked at teardown to still serve a fresh client."""
    yield echo_broker
    if echo_broker.running():
        assert_serves(echo_broker)


@pytest.fixture
def echo_with(start_broker):
    """Factory for echo brokers with extra options (--set ...), each checked
    at teardown to still serve a fresh client."""
    made = []

    def make(*args, **kw):
        b = start_broker("echo-broker", args=list(args), **kw)
        made.append(b)
        return b
    yield make
    for b in made:
        if b.running():
            assert_serves(b)


def ws(b, path="/", protocols=("echo",)):
    return ws_client(b.ports["ws"], path, protocols)


# ------------------------------------------------- handshake with a library

def test_library_client_text_binary_and_session_close(eb):
    async def go():
        async with lib_connect(eb.ws_url("/")) as c:
            assert c.subprotocol == "echo"
            await c.send("hello, wörld")
            assert await c.recv() == "hello, wörld"
            await c.send(b"\x00\xff\x80binary")
            assert await c.recv() == b"\x00\xff\x80binary"
            await c.send("close")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as ei:
                await c.recv()
            return ei.value
    closed = run(go())
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1000, "bye")


def test_library_client_picks_first_known_subprotocol(eb):
    async def go():
        async with lib_connect(eb.ws_url("/"), subprotocols=["foo", "echo", "bar"]) as c:
            assert c.subprotocol == "echo"
            await c.send("x")
            assert await c.recv() == "x"
    run(go())


def test_library_client_refused_for_unknown_subprotocol(eb):
    async def go():
        async with lib_connect(eb.ws_url("/"), subprotocols=["nope"]):
            pass
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
        run(go())
    assert ei.value.status_code == 400


def test_library_client_on_auto_listener(eb):
    async def go():
        url = "ws://127.0.0.1:%d/" % eb.ports["auto"]
        async with lib_connect(url) as c:
            assert c.subprotocol == "echo"
            await c.send("via auto")
            assert await c.recv() == "via auto"
    run(go())


# ------------------------------------------------------ handshake, raw

def test_accept_value_for_rfc_sample_key(eb):
    with Client(eb.ports["ws"]) as c:
        r = c.handshake("/", protocols="echo", key="dGhlIHNhbXBsZSBub25jZQ==")
        assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert r.header_all("Sec-WebSocket-Protocol") == ["echo"]


@pytest.mark.parametrize("upgrade,connection", [
    ("websocket", "Upgrade"),
    ("WebSocket", "keep-alive, Upgrade"),
    ("WEBSOCKET", "upgrade"),
    ("websocket", "keep-alive,UPGRADE"),
    ("websocket", "Upgrade , keep-alive"),
    ("foo/2, websocket", "keep-alive, Upgrade"),
])
def test_upgrade_and_connection_tokens(eb, upgrade, connection):
    with Client(eb.ports["ws"]) as c:
        c.handshake("/", protocols="echo",
                    headers={"Upgrade": upgrade, "Connection": connection})
        c.send_frame(OP_TEXT, "ok")
        assert echo_bytes(c, 2)[0] == b"ok"


@pytest.mark.parametrize("version", ["8", "12", "14"])
def test_version_other_than_13_gets_426(eb, version):
    with Client(eb.ports["ws"]) as c:
        r = c.handshake("/", protocols="echo", headers={"Sec-WebSocket-Version": version},
                        expect=426)
        assert r.header("Sec-WebSocket-Version") == "13", r


@pytest.mark.parametrize("key", [
    "",
    "abc",
    base64.b64encode(b"x" * 15).decode(),
    base64.b64encode(b"x" * 17).decode(),
    "!!!!!!!!!!!!!!!!!!!!!!==",
    None,  # header missing
])
def test_bad_key_gets_400(eb, key):
    with Client(eb.ports["ws"]) as c:
        if key is None:
            c.handshake("/", protocols="echo", omit=["Sec-WebSocket-Key"], expect=400)
        else:
            c.send(upgrade_request("/", "echo", key=key))
            r = c.read_http_response()
            assert r.status == 400, r


@pytest.mark.parametrize("offer", [
    "echo",
    "foo, echo",
    "foo,echo",
    "foo ,  echo , bar",
    "echo, foo",
])
def test_subprotocol_list_chooses_echo(eb, offer):
    with Client(eb.ports["ws"]) as c:
        r = c.handshake("/", protocols=offer)
        assert r.header_all("Sec-WebSocket-Protocol") == ["echo"], r


@pytest.mark.parametrize("offer", ["ECHO", "ech", "echoo", "Echo, ech, e", "mqtt-nope"])
def test_only_unknown_subprotocols_get_400_naming_supported(eb, offer):
    with Client(eb.ports["ws"]) as c:
        r = c.handshake("/", protocols=offer, expect=400)
        assert re.search(rb"\becho\b", r.body), r


def test_no_subprotocol_path_decides(eb):
    with Client(eb.ports["ws"]) as c:
        r = c.handshake("/echo")
        assert r.header("Sec-WebSocket-Protocol") is None, r
        c.send_frame(OP_TEXT, "by path")
        assert echo_bytes(c, 7)[0] == b"by path"


@pytest.mark.parametrize("path", ["/", "/nothing", "/echoes"])
def test_no_subprotocol_unknown_path_gets_400(eb, path):
    with Client(eb.ports["ws"]) as c:
        c.handshake(path, expect=400)


def test_origin_allowed_by_default(eb):
    with Client(eb.ports["ws"]) as c:
        c.handshake("/", protocols="echo", headers={"Origin": "http://anything.example"})


def test_origin_allow_list(echo_with):
    b = echo_with("--set", "origin=http://good.example", "--set", "origin=https://also.example")
    for origin in ("http://good.example", "https://also.example"):
        with Client(b.ports["ws"]) as c:
            c.handshake("/", protocols="echo", headers={"Origin": origin})
            c.send_frame(OP_TEXT, "o")
            assert echo_bytes(c, 1)[0] == b"o"
    for origin in ("http://evil.example", "http://good.example.evil"):
        with Client(b.ports["ws"]) as c:
            c.handshake("/", protocols="echo", headers={"Origin": origin}, expect=403)


# ---------------------------------------------------------------- HTTP

@pytest.mark.parametrize("kind", ["auto", "ws"])
def test_healthz(eb, kind):
    conn = http.client.HTTPConnection("127.0.0.1", eb.ports[kind], timeout=5)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200
    assert "json" in (r.getheader("Content-Type") or "")
    assert json.loads(body)["status"] == "ok"


@pytest.mark.parametrize("kind", ["auto", "ws"])
def test_unknown_path_404(eb, kind):
    with Client(eb.ports[kind]) as c:
        r = c.request(b"GET /no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 404, r


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_405(eb, method):
    with Client(eb.ports["ws"]) as c:
        r = c.request(("%s /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                       % method).encode())
        assert r.status == 405, r


def test_oversized_head_431(eb):
    with Client(eb.ports["ws"]) as c:
        r = c.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                      + b"a" * 9000 + b"\r\n\r\n")
        assert r.status == 431, r


def test_http_max_header_is_configurable(echo_with):
    b = echo_with("--set", "http_max_header=1024")
    with Client(b.ports["ws"]) as c:
        r = c.request(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 600 + b"\r\n\r\n")
        assert r.status == 200, r
    with Client(b.ports["ws"]) as c:
        r = c.request(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 1500 + b"\r\n\r\n")
        assert r.status == 431, r


@pytest.mark.parametrize("raw", [
    b"GET /healthz HTTP/1.1\r\nHost localhost\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n: no-name\r\n\r\n",
    b"GET /healthz HTXP/1.1\r\nHost: x\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz HTTP/1.1 extra\r\n\r\n",
])
def test_malformed_request_400(eb, raw):
    with Client(eb.ports["ws"]) as c:
        r = c.request(raw)
        assert r.status == 400, r


# ---------------------------------------------------- handshake deadline

@pytest.mark.parametrize("kind", ["ws", "auto"])
def test_silent_client_dropped_after_handshake_timeout(echo_with, kind):
    b = echo_with("--set", "handshake_timeout_ms=500")
    with Client(b.ports[kind]) as c:
        t = dropped_within(c, 4.0)
        assert t is not None, "silent client not dropped"
        assert t >= 0.35, "dropped after %.2f s, before the 500 ms deadline" % t


def test_trickling_client_dropped_after_handshake_timeout(echo_with):
    b = echo_with("--set", "handshake_timeout_ms=500")
    with Client(b.ports["ws"]) as c:
        c.send(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.monotonic()
        dropped = None
        # The dropped connection shows as a failed send or as EOF / reset
        # on read, whichever the client meets first; both are one outcome.
        while time.monotonic() - t0 < 4.0:
            try:
                c.send(b"X")
            except OSError:
                dropped = time.monotonic() - t0
                break
            r, _, _ = select.select([c.sock], [], [], 0.05)
            if r:
                try:
                    data = c.sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    dropped = time.monotonic() - t0
                    break
                c.buf += data
        assert dropped is not None, "a client sending a byte every 50 ms was never dropped"
        assert dropped < 2.5, "dropped only after %.2f s" % dropped
        # An unfinished request head gets no answer, just the end.
        assert c.buf == b"", c.buf


def test_handshake_deadline_ends_once_the_session_is_up(echo_with):
    b = echo_with("--set", "handshake_timeout_ms=300")
    with ws(b) as c:
        c.send_frame(OP_TEXT, "hi")
        assert echo_bytes(c, 2)[0] == b"hi"
        # Silence for three times the deadline is the thing under test.
        time.sleep(0.9)
        c.send_frame(OP_TEXT, "still here")
        assert echo_bytes(c, 10)[0] == b"still here"


def test_upgraded_client_that_never_speaks_is_dropped(echo_with):
    # The deadline covers the protocol's own opening too (a WebSocket that
    # never sends its STOMP/MQTT CONNECT); the echo session opens on its
    # first answer.
    b = echo_with("--set", "handshake_timeout_ms=300")
    with ws(b) as c:
        t0 = time.monotonic()
        # Past the upgrade the deadline closes like a session would: a
        # close frame with 1008 (policy), then the TCP connection ends once
        # the client answers.
        f = c.read_frame()
        assert time.monotonic() - t0 >= 0.2
        assert f.opcode == OP_CLOSE and not f.masked, f
        assert f.close_code == 1008, f
        c.send_close(f.close_code)
        assert c.wait_eof(3.0)


# ----------------------------------------------------------- frames

@pytest.mark.parametrize("payload", [b"", b"ping-data", bytes(range(125))])
def test_ping_answered_with_same_payload(eb, payload):
    with ws(eb) as c:
        c.send_frame(OP_PING, payload)
        assert read_until_pong(c).payload == payload


def test_unsolicited_pong_accepted(eb):
    with ws(eb) as c:
        c.send_frame(OP_PONG, b"whatever")
        c.send_frame(OP_TEXT, "after pong")
        assert echo_bytes(c, 10)[0] == b"after pong"


def test_text_and_binary_echo_types(eb):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "text " + "€")
        m = c.read_message()
        assert (m.opcode, m.payload) == (OP_TEXT, ("text " + "€").encode())
        c.send_frame(OP_BINARY, b"\xff\xfe\x00")
        m = c.read_message()
        assert (m.opcode, m.payload) == (OP_BINARY, b"\xff\xfe\x00")


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 70000])
def test_length_encodings(eb, size):
    data = os.urandom(size)
    with ws(eb) as c:
        c.send_frame(OP_BINARY, data)
        assert echo_bytes(c, size)[0] == data


def test_several_frames_in_one_write(eb):
    with ws(eb) as c:
        c.send(build_frame(OP_TEXT, "one") + build_frame(OP_BINARY, b"\x00\xff")
               + build_frame(OP_PING, b"pp") + build_frame(OP_TEXT, "three"))
        data, pongs = [], []
        while len(data) < 3 or not pongs:
            f = c.read_frame()
            assert f.opcode != OP_CLOSE, f
            if f.opcode == OP_PONG:
                pongs.append(f.payload)
            elif f.opcode != OP_PING:
                data.append((f.opcode, f.payload))
        assert data == [(OP_TEXT, b"one"), (OP_BINARY, b"\x00\xff"), (OP_TEXT, b"three")]
        assert pongs == [b"pp"]


def test_handshake_and_frames_dribbled_one_byte_per_write(eb):
    with Client(eb.ports["ws"]) as c:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        c.dribble(upgrade_request("/", "echo", key=key))
        r = c.read_http_response()
        assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key), r
        payload = ("dribbled " * 25).encode()  # 225 bytes: 16-bit length
        c.dribble(build_frame(OP_TEXT, payload))
        assert echo_bytes(c, len(payload))[0] == payload
        c.dribble(build_frame(OP_PING, b"tiny"))
        assert read_until_pong(c).payload == b"tiny"
        c.dribble(build_frame(OP_TEXT, EURO[:1], fin=False) + build_frame(OP_CONT, EURO[1:]))
        assert echo_bytes(c, 3)[0] == EURO


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING])
def test_unmasked_client_frame_1002(eb, opcode):
    with ws(eb) as c:
        c.send_frame(opcode, b"abc", mask=False)
        c.expect_close(1002)


@pytest.mark.parametrize("rsv", [4, 2, 1])
def test_rsv_bits_1002(eb, rsv):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "x", rsv=rsv)
        c.expect_close(1002)


def test_rsv_bit_on_control_frame_1002(eb):
    with ws(eb) as c:
        c.send_frame(OP_PING, "x", rsv=4)
        c.expect_close(1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_1002(eb, opcode):
    with ws(eb) as c:
        c.send_frame(opcode, b"?")
        c.expect_close(1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_bytes_1002(eb, opcode):
    payload = close_payload(1000, b"r" * 124) if opcode == OP_CLOSE else b"p" * 126
    assert len(payload) == 126
    with ws(eb) as c:
        c.send_frame(opcode, payload)
        c.expect_close(1002)


def test_fragmented_control_frame_1002(eb):
    with ws(eb) as c:
        c.send_frame(OP_PING, b"part", fin=False)
        c.expect_close(1002)


def test_continuation_without_start_1002(eb):
    with ws(eb) as c:
        c.send_frame(OP_CONT, b"orphan")
        c.expect_close(1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_during_fragmented_message_1002(eb, second):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "start", fin=False)
        c.send_frame(second, "again")
        c.expect_close(1002)


def test_fragmented_messages(eb):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "Hel", fin=False)
        c.send_frame(OP_CONT, "", fin=False)
        c.send_frame(OP_CONT, "lo")
        got, ops = echo_bytes(c, 5)
        assert got == b"Hello"
        c.send_frame(OP_BINARY, b"\x00\x01", fin=False)
        c.send_frame(OP_CONT, b"\x02", fin=False)
        c.send_frame(OP_CONT, b"\xff")
        assert echo_bytes(c, 4)[0] == b"\x00\x01\x02\xff"


def test_ping_between_fragments(eb):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "first half ", fin=False)
        c.send_frame(OP_PING, b"mid")
        assert read_until_pong(c).payload == b"mid"
        c.send_frame(OP_CONT, "second half")
        assert echo_bytes(c, 22)[0] == b"first half second half"


def test_close_between_fragments_is_answered(eb):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "unfinished", fin=False)
        c.send_close(1000)
        c.expect_close(1000, reply=False)


@pytest.mark.parametrize("cuts", [
    [EURO[:1], EURO[1:]],
    [EURO[:2], EURO[2:]],
    [b"a" + GRIN[:1], GRIN[1:2], GRIN[2:3], GRIN[3:] + b"z"],
    [GRIN[:3], b"", GRIN[3:]],
])
def test_utf8_code_point_split_across_fragments_accepted(eb, cuts):
    whole = b"".join(cuts)
    with ws(eb) as c:
        for i, part in enumerate(cuts):
            c.send_frame(OP_TEXT if i == 0 else OP_CONT, part, fin=i == len(cuts) - 1)
        assert echo_bytes(c, len(whole))[0] == whole


@pytest.mark.parametrize("bad", [
    b"\xff",
    b"abc\x80",
    b"\xc0\xaf",            # overlong '/'
    b"\xed\xa0\x80",        # UTF-16 surrogate
    b"\xf4\x90\x80\x80",    # above U+10FFFF
    b"ok\xe2\x82",          # truncated at the end of the message
])
def test_invalid_utf8_text_1007(eb, bad):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, bad)
        c.expect_close(1007)


@pytest.mark.parametrize("cuts", [
    [b"valid ", b"\xff"],
    [EURO[:1], b"x"],       # a lead byte followed by a non-continuation
    [b"ok", EURO[:2]],      # the message ends inside a code point
])
def test_invalid_utf8_across_fragments_1007(eb, cuts):
    with ws(eb) as c:
        for i, part in enumerate(cuts):
            c.send_frame(OP_TEXT if i == 0 else OP_CONT, part, fin=i == len(cuts) - 1)
        c.expect_close(1007)


def test_binary_is_not_utf8_checked(eb):
    with ws(eb) as c:
        c.send_frame(OP_BINARY, b"\xff\xc0\xaf")
        assert echo_bytes(c, 3)[0] == b"\xff\xc0\xaf"


# -------------------------------------------------------- message size

def test_oversize_message_1009_decided_from_header(eb):
    with ws(eb) as c:
        # Only the header and mask key of a 1 MiB + 1 frame: the broker must
        # refuse it without waiting for (or buffering) the payload.
        c.send(build_frame(OP_BINARY, b"", length=MIB + 1)[:14])
        c.expect_close(1009)


def test_oversize_sender_is_not_reset_before_it_reads_the_close(eb):
    # A real client writes its whole message before it looks at what came
    # back. The broker must keep reading (and discarding) until the client
    # answers its close or close_timeout_ms passes: closing the socket at
    # once resets the client mid-write, and clients such as Node's ws then
    # report 1006 instead of the 1009 the broker sent.
    with ws(eb) as c:
        c.send(build_frame(OP_BINARY, b"", length=2 * MIB)[:14])
        # Every byte of the payload goes out after the broker's close has
        # arrived, so all of it meets a broker that has already given up.
        r, _, _ = select.select([c.sock], [], [], 5.0)
        assert r, "no close from the broker after an oversized frame header"
        try:
            for _ in range(32):
                c.send(b"a" * 65536)
        except OSError as e:
            pytest.fail("broker reset a client still sending its oversized message: %r" % e)
        c.expect_close(1009)


def test_huge_64bit_length_1009(eb):
    with ws(eb) as c:
        c.send(build_frame(OP_BINARY, b"", length=(1 << 63) - 1)[:14])
        c.expect_close(1009)


def test_ws_max_message_configurable_and_counts_fragments(echo_with):
    b = echo_with("--set", "ws_max_message=1000")
    with ws(b) as c:
        data = os.urandom(1000)
        c.send_frame(OP_BINARY, data)
        assert echo_bytes(c, 1000)[0] == data
    with ws(b) as c:
        c.send_frame(OP_BINARY, os.urandom(1001))
        c.expect_close(1009)
    with ws(b) as c:
        c.send_frame(OP_TEXT, "a" * 600, fin=False)
        c.send_frame(OP_CONT, "b" * 600, fin=False)
        c.expect_close(1009)


# ------------------------------------------------------ close handshake

@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 4000, 4999])
def test_close_code_echoed(eb, code):
    with ws(eb) as c:
        c.send_close(code, "client says bye")
        c.expect_close(code, reply=False)


def test_empty_close_answered(eb):
    with ws(eb) as c:
        c.send_close(None)
        while True:
            f = c.read_frame()
            if f.opcode == OP_CLOSE:
                break
        # An empty close (no status) is answered with an empty close.
        assert f.close_code is None, f
        assert f.payload == b"", f
        assert c.wait_eof(3.0), "TCP not closed after the close handshake"


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                                  5000, 65535])
def test_invalid_close_code_1002(eb, code):
    with ws(eb) as c:
        c.send_close(code)
        c.expect_close(1002)


def test_one_byte_close_payload_1002(eb):
    with ws(eb) as c:
        c.send_frame(OP_CLOSE, b"\x03")
        c.expect_close(1002)


def test_close_reason_not_utf8_1007(eb):
    with ws(eb) as c:
        c.send_close(1000, b"bad \xff reason")
        c.expect_close(1007)


def test_session_close_1000_bye(eb):
    with ws(eb) as c:
        c.send_frame(OP_TEXT, "close")
        f = c.expect_close(1000)
        assert f.close_reason == b"bye"


def test_close_wait_is_bounded(echo_with):
    b = echo_with("--set", "close_timeout_ms=300")
    with ws(b) as c:
        c.send_frame(OP_TEXT, "close")
        t0 = time.monotonic()
        f = c.expect_close(1000, reply=False, eof_timeout=4.0)
        assert f.close_reason == b"bye"
        assert time.monotonic() - t0 < 2.5


def test_data_after_close_is_not_echoed(eb):
    with ws(eb) as c:
        c.send_close(1000)
        c.send_frame(OP_TEXT, "too late")
        f = c.read_frame()
        while f.opcode == OP_PING:
            f = c.read_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        assert c.wait_eof(3.0)
        assert b"too late" not in c.buf


# ------------------------------------------------------------- keepalive

def test_keepalive_pings_and_client_that_answers_stays(echo_with):
    b = echo_with("--set", "ws_ping_interval_ms=200", "--set", "ws_pong_timeout_ms=300")
    with ws(b) as c:
        pings = 0
        t_end = time.monotonic() + 1.3
        while time.monotonic() < t_end:
            c.sock.settimeout(max(0.01, t_end - time.monotonic()))
            try:
                f = c.read_frame()
            except socket.timeout:
                break
            assert f.opcode == OP_PING, "unexpected %r" % f
            assert not f.masked
            pings += 1
            c.send_frame(OP_PONG, f.payload)
        c.sock.settimeout(5)
        assert pings >= 2, "only %d keepalive pings in 1.3 s at a 200 ms interval" % pings
        c.send_frame(OP_TEXT, "alive")
        assert echo_bytes(c, 5)[0] == b"alive"


def test_keepalive_drops_client_that_does_not_pong(echo_with):
    b = echo_with("--set", "ws_ping_interval_ms=200", "--set", "ws_pong_timeout_ms=300")
    with ws(b) as c:
        t = dropped_within(c, 4.0)
        assert t is not None, "a client that never answers pings was not dropped"
        assert t >= 0.3, "dropped after %.2f s, before interval + pong timeout" % t
        frames = parse_frames(c.buf)
        assert frames and frames[0].opcode == OP_PING, frames


def test_library_client_survives_keepalive(echo_with):
    b = echo_with("--set", "ws_ping_interval_ms=150", "--set", "ws_pong_timeout_ms=300")

    async def go():
        async with lib_connect(b.ws_url("/"), ping_interval=None) as c:
            # Idle across several ping intervals and pong timeouts: the
            # time passing is the thing under test.
            await asyncio.sleep(1.0)
            await c.send("after pings")
            assert await c.recv() == "after pings"
    run(go())


# ----------------------------------------------------- the auto listener

def test_auto_sniffs_raw_echo(eb):
    with Client(eb.ports["auto"]) as c:
        c.send_split(b"ECHO\n")
        c.send(b"raw bytes")
        got = c.recv_until(b"raw bytes")
        # The sniffed prefix is the session's first input, echoed on its own.
        assert got == b"ECHO\nraw bytes", got
        assert c.buf == b""
        # "raw bytes" came back, so "close" is read as a chunk of its own.
        c.send(b"close")
        assert c.wait_eof(3.0), "raw echo session did not close on 'close'"
        assert c.buf == b"", c.buf


def test_auto_sniff_prefix_split_across_writes(eb):
    with Client(eb.ports["auto"]) as c:
        c.send_split(b"EC")
        c.send_split(b"HO")
        c.send_split(b"\n")
        c.send(b"split")
        c.recv_until(b"split")


def test_auto_sniffs_http_and_websocket(eb):
    with Client(eb.ports["auto"]) as c:
        assert c.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    with ws_client(eb.ports["auto"]) as c:
        c.send_frame(OP_TEXT, "auto ws")
        assert echo_bytes(c, 7)[0] == b"auto ws"


def test_auto_garbage_is_dropped(echo_with):
    b = echo_with("--set", "handshake_timeout_ms=500")
    with Client(b.ports["auto"]) as c:
        c.send(b"\x00\x01\x02 not a protocol anyone speaks\r\n\r\n")
        assert c.wait_eof(3.0), "unrecognised bytes on the auto listener were not dropped"
        assert b"not a protocol" not in c.buf


def test_ws_listener_does_not_sniff_raw_echo(echo_with):
    b = echo_with("--set", "handshake_timeout_ms=500")
    with Client(b.ports["ws"]) as c:
        c.send_split(b"ECHO\n")
        c.send(b"raw bytes")
        assert c.wait_eof(3.0), "connection not ended"
        assert b"raw bytes" not in c.buf
        # "ECHO\n" alone is already no HTTP request line.
        assert c.buf.startswith(b"HTTP/1.1 400 "), c.buf


# ------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_goodbye_1001_exit_0(start_broker, sig):
    b = start_broker("echo-broker", args=["--set", "shutdown_timeout_ms=4000",
                                          "--set", "close_timeout_ms=4000"])
    ws_port = b.ports["ws"]
    a = ws(b)
    idle = Client(b.ports["auto"])  # connected, never sent a byte
    t0 = time.monotonic()
    b.send_signal(sig)
    m = a.read_message()
    assert (m.opcode, m.payload) == (OP_TEXT, b"goodbye"), m
    f = a.read_message()
    assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    assert not f.masked
    # The broker waits for our close reply; meanwhile it serves nobody new.
    # Its listeners stop accepting but stay open, so a connect completes in
    # the kernel's backlog and then hears nothing: 0.5 s of silence is the
    # thing under test.
    late = Client(ws_port, timeout=1)
    late.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not late.wait_eof(0.5), "a new client was dropped, not left waiting"
    assert late.buf == b"", "a new client was served after %s" % sig
    late.close()
    assert b.running(), "broker exited before the client answered its close"
    a.send_close(1001)
    assert a.wait_eof(3.0)
    assert idle.wait_eof(3.0)
    a.close()
    idle.close()
    assert b.stop(timeout=5) == 0, b.log()
    assert time.monotonic() - t0 < 4.0


def test_shutdown_is_bounded_when_clients_do_not_answer(start_broker):
    b = start_broker("echo-broker", args=["--set", "shutdown_timeout_ms=800",
                                          "--set", "close_timeout_ms=10000"])
    clients = [ws(b) for _ in range(3)]
    t0 = time.monotonic()
    b.send_signal(signal.SIGTERM)
    for c in clients:
        m = c.read_message(answer_pings=False)
        assert m.payload == b"goodbye", m
    rc = b.proc.wait(5)
    elapsed = time.monotonic() - t0
    assert rc == 0, b.log()
    assert elapsed < 3.0, "exit took %.2f s with shutdown_timeout_ms=800" % elapsed
    for c in clients:
        f = c.read_message(answer_pings=False)
        assert f.opcode == OP_CLOSE and f.close_code == 1001, f
        assert c.wait_eof(1.0)
        c.close()


def test_library_client_sees_goodbye_and_1001(start_broker):
    b = start_broker("echo-broker")

    async def go():
        async with lib_connect(b.ws_url("/")) as c:
            await c.send("before")
            assert await c.recv() == "before"
            b.send_signal(signal.SIGTERM)
            assert await c.recv() == "goodbye"
            with pytest.raises(websockets.exceptions.ConnectionClosed) as ei:
                await c.recv()
            return ei.value
    closed = run(go())
    assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert b.stop() == 0, b.log()


def _debug_lines_after(b, offset):
    return DEBUG_LINE.findall(b.log()[offset:])


_barriers = itertools.count()


def _log_barrier(b, start=0):
    """Offset in the log just past a line the broker writes now (an info
    line, so at any level): whatever it logged before is before that
    offset. Lets a test check what was not logged without sleeping."""
    path = "/log-barrier-%d" % next(_barriers)
    with Client(b.ports["ws"]) as c:
        assert c.request(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()).status == 404
    return b.wait_log("no such path: %s\n" % path, start=start)


def _activity(b):
    with ws(b) as c:
        c.send_frame(OP_TEXT, "x")
        echo_bytes(c, 1)
        c.send_close(1000)
        c.expect_close(1000, reply=False)


def test_sighup_reloads_log_level(start_broker):
    b = start_broker("echo-broker", config_text="# test\nlog_level info\n", log_level=None)
    _activity(b)
    end = _log_barrier(b)
    assert not DEBUG_LINE.findall(b.log()[:end]), "debug lines at log_level info:\n" + b.log()

    b.config_path.write_text("log_level debug\n")
    b.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while not _debug_lines_after(b, 0):
        assert time.monotonic() < deadline, "no debug line after SIGHUP to debug:\n" + b.log()
        _activity(b)
        _log_barrier(b)

    b.config_path.write_text("log_level info\n")
    b.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while True:
        off = len(b.log())
        _activity(b)
        end = _log_barrier(b, off)
        if not DEBUG_LINE.findall(b.log()[off:end]):
            break
        assert time.monotonic() < deadline, "debug lines still logged after SIGHUP to info"
    assert b.running()


def test_sighup_with_broken_config_keeps_running(start_broker):
    b = start_broker("echo-broker", config_text="log_level info\n", log_level=None)
    b.config_path.write_text("log_level info\nno_such_key 1\n")
    b.send_signal(signal.SIGHUP)
    b.wait_log("%s:2:" % b.config_path)
    assert b.running()
    assert_serves(b)


# ----------------------------------------------------- configuration

@pytest.mark.parametrize("text,line", [
    ("# comment\n\nno_such_key 1\n", 3),
    ("log_level info\nws_max_message lots\n", 2),
    ("log_level loud\n", 1),
    ("# listeners\nlistener 127.0.0.1:0/nope\n", 2),
    ("handshake_timeout_ms\n", 1),
])
def test_config_file_error_names_file_and_line(start_broker, text, line):
    b = start_broker("echo-broker", config_text=text, wait=False, check_exit=False)
    rc = b.wait()
    assert rc > 0, "exit status %s for a bad config:\n%s" % (rc, b.log())
    assert "%s:%d:" % (b.config_path, line) in b.log(), b.log()
    assert not b.port_file.exists()


@pytest.mark.parametrize("args,needle", [
    (["--set", "no_such_key=1"], "no_such_key"),
    (["--set", "ws_max_message=-5"], "ws_max_message"),
    (["--listen", "127.0.0.1:0/nope"], "nope"),
    (["--log-level", "loud"], "loud"),
    (["--no-such-option"], "no-such-option"),
    (["-c", "/nonexistent/wsbroker.conf"], "/nonexistent/wsbroker.conf"),
])
def test_bad_command_line_exits_non_zero(start_broker, args, needle):
    b = start_broker("echo-broker", args=args, wait=False, check_exit=False)
    rc = b.wait()
    assert rc > 0, "exit status %s:\n%s" % (rc, b.log())
    assert needle in b.log(), b.log()


def test_command_line_overrides_file(start_broker):
    conf = "# file\nlistener 127.0.0.1:0/mqtt\nlog_level error\n"
    b = start_broker("echo-broker", config_text=conf,
                     args=["--listen", "127.0.0.1:0/ws", "--log-level", "debug"])
    assert len(b.port_lines) == 1 and b.port_lines[0].startswith("ws 127.0.0.1:"), b.port_lines
    _activity(b)
    b.wait_log(" debug ")


def test_config_file_settings_apply(start_broker):
    conf = ("# a comment line\n\nlistener 127.0.0.1:0/ws\nlistener 127.0.0.1:0/auto\n"
            "ws_max_message 100\npath /other echo\n")
    b = start_broker("echo-broker", config_text=conf)
    assert [l.split()[0] for l in b.port_lines] == ["ws", "auto"]
    with ws(b, "/other", protocols=None) as c:
        c.send_frame(OP_TEXT, "x" * 100)
        assert echo_bytes(c, 100)[0] == b"x" * 100
        c.send_frame(OP_TEXT, "x" * 101)
        c.expect_close(1009)


def test_port_file_format_and_bound_addresses_logged(echo_broker):
    b = echo_broker
    assert len(b.port_lines) == 4, b.port_lines
    kinds = []
    for line in b.port_lines:
        m = re.fullmatch(r"(auto|ws|mqtt|stomp) 127\.0\.0\.1:(\d+)", line)
        assert m, "bad port file line %r" % line
        kinds.append(m.group(1))
        port = int(m.group(2))
        assert 0 < port < 65536
        assert "127.0.0.1:%d" % port in b.log(), "bound address not logged"
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert kinds == ["auto", "ws", "mqtt", "stomp"]
    assert len({a[2] for a in b.addrs}) == 4


def test_listen_port_only_defaults_to_auto(start_broker):
    b = start_broker("echo-broker", args=["--listen", "0"])
    assert len(b.port_lines) == 1
    m = re.fullmatch(r"auto (\S+):(\d+)", b.port_lines[0])
    assert m and int(m.group(2)) > 0, b.port_lines


@pytest.mark.parametrize("opt,needle", [("--version", r"\d+\.\d+"), ("--help", r"--listen")])
def test_version_and_help_exit_0(binaries, opt, needle):
    exe = binaries["wsbroker"]
    if not exe.exists():
        pytest.fail("%s not built" % exe)
    p = subprocess.run([str(exe), opt], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    assert re.search(needle, p.stdout + p.stderr), p


# --------------------------------------------------- the real broker

def test_real_broker_healthz(broker):
    conn = http.client.HTTPConnection("127.0.0.1", broker.ports["auto"], timeout=5)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    assert r.status == 200
    assert json.loads(r.read())["status"] == "ok"
    conn.close()


@pytest.mark.parametrize("offer,chosen", [
    ("mq, mqtt", "mqtt"),
    ("v10.stomp, v12.stomp", "v10.stomp"),
    ("foo, v12.stomp, mqtt", "v12.stomp"),
])
def test_real_broker_subprotocols(broker, offer, chosen):
    with Client(broker.ports["ws"]) as c:
        r = c.handshake("/", protocols=offer)
        assert r.header_all("Sec-WebSocket-Protocol") == [chosen], r


def test_real_broker_unknown_subprotocols_400_lists_supported(broker):
    with Client(broker.ports["ws"]) as c:
        r = c.handshake("/", protocols="mq, STOMP, echo", expect=400)
        for name in (b"mqtt", b"v12.stomp", b"v11.stomp", b"v10.stomp"):
            assert name in r.body, r


@pytest.mark.parametrize("path,status", [("/mqtt", 101), ("/stomp", 101), ("/", 400),
                                         ("/echo", 400)])
def test_real_broker_path_decides_without_subprotocol(broker, path, status):
    with Client(broker.ports["ws"]) as c:
        r = c.handshake(path, expect=status)
        assert r.header("Sec-WebSocket-Protocol") is None, r
