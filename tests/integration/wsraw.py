"""Raw-socket helpers for feeding a broker malformed or oddly cut input.

A real client library refuses to send most of what these tests need (an
unmasked frame, a bad close code, a header split into single bytes), so the
transport tests speak HTTP and RFC 6455 framing by hand through this module.
Everything is blocking with a timeout: a broker that hangs fails the test
instead of hanging it.
"""

import base64
import hashlib
import os
import socket
import struct
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Closed(Exception):
    """The peer closed the TCP connection before the expected bytes came."""


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_NOCOOKIE = 0xffffffff


def _diag_queues(src, dst):
    """(rx_queue, tx_queue) of this host's TCP socket src -> dst (address,
    port pairs), or None when there is none: the fields /proc/net/tcp shows,
    asked of sock_diag for one socket (the table can hold thousands)."""
    fam = socket.AF_INET6 if ":" in src[0] else socket.AF_INET

    def addr(a):
        return socket.inet_pton(fam, a).ljust(16, b"\0")
    # struct inet_diag_req_v2 with its struct inet_diag_sockid, every state
    req = struct.pack("=BBBBI", fam, socket.IPPROTO_TCP, 0, 0, 0xffffffff)
    req += struct.pack(">HH", src[1], dst[1]) + addr(src[0]) + addr(dst[0])
    req += struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.sendto(msg, (0, 0))
        data = nl.recv(65536)
    if struct.unpack_from("=IH", data)[1] == NLMSG_ERROR:
        return None
    # struct inet_diag_msg after the 16-byte nlmsghdr: idiag_rqueue at 56
    return struct.unpack_from("=II", data, 16 + 56)


def wait_peer_read(sock, timeout=3.0):
    """Return once the process at the other end of sock (on this host) has
    read everything sent on it so far: our send queue is acknowledged, so the
    bytes reached the peer's socket (our tx_queue 0), and the peer's socket
    holds nothing unread (its rx_queue 0). What is sent next then arrives in
    a read of its own, which is how a test makes a split write certain: the
    kernel may merge back-to-back writes however long a client sleeps between
    them. Fails the test when the peer has not read within timeout."""
    me, peer = sock.getsockname()[:2], sock.getpeername()[:2]
    deadline = time.monotonic() + timeout
    while True:
        ours, theirs = _diag_queues(me, peer), _diag_queues(peer, me)
        sent = ours and ours[1]
        unread = theirs and theirs[0]
        if sent == 0 and unread == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError("peer did not read what was sent within %.1f s "
                                 "(unacknowledged %r, unread %r)" % (timeout, sent, unread))
        time.sleep(0.0005)  # polling interval


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    """Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode() + WS_GUID).digest()
    return base64.b64encode(digest).decode()


def upgrade_request(path="/", protocols=None, key=None, headers=None,
                    omit=(), host="127.0.0.1", version="13"):
    """Bytes of a WebSocket upgrade request.

    headers: extra (name, value) pairs, or a dict; a name also given in the
    defaults replaces the default. omit: default header names to leave out.
    """
    if key is None:
        key = new_key()
    default = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ]
    if protocols is not None:
        if not isinstance(protocols, str):
            protocols = ", ".join(protocols)
        default.append(("Sec-WebSocket-Protocol", protocols))
    extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    override = {n.lower() for n, _ in extra}
    skip = {n.lower() for n in omit} | override
    lines = ["GET %s HTTP/1.1" % path]
    lines += ["%s: %s" % (n, v) for n, v in default if n.lower() not in skip]
    lines += ["%s: %s" % (n, v) for n, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True,
                mask_key=None, length=None):
    """One frame as a client would send it.

    rsv: the three RSV bits as a number 0..7 (RSV1 = 4). mask=False sends an
    unmasked frame (illegal from a client). length: the length to declare in
    the header when it must differ from len(payload) (an oversize header
    without its payload).
    """
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    if mask_key is None:
        mask_key = os.urandom(4)
    return head + mask_key + apply_mask(payload, mask_key)


def apply_mask(payload, key):
    if not payload:
        return b""
    # XOR through big integers: fast enough for the megabyte-sized messages.
    n = len(payload)
    full = (key * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")
    return x.to_bytes(n, "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.masked = payload, masked

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%s rsv=%d op=%#x masked=%s len=%d %r)" % (
            self.fin, self.rsv, self.opcode, self.masked, len(self.payload), p)


def parse_frame(data):
    """(Frame, bytes used) for the first complete frame in data, or None."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    n, i = b1 & 0x7F, 2
    if n == 126:
        if len(data) < 4:
            return None
        n, i = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        if len(data) < 10:
            return None
        n, i = struct.unpack("!Q", data[2:10])[0], 10
    key = None
    if b1 & 0x80:
        if len(data) < i + 4:
            return None
        key, i = data[i:i + 4], i + 4
    if len(data) < i + n:
        return None
    payload = data[i:i + n]
    if key:
        payload = apply_mask(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, bool(key)), i + n


def parse_frames(data):
    """Every complete frame in data (e.g. what arrived before an EOF)."""
    out = []
    while True:
        r = parse_frame(data)
        if r is None:
            return out
        out.append(r[0])
        data = data[r[1]:]


class HttpResponse:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        """The value of the first header named name (any case), or None."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return "HttpResponse(%d %s %r body=%r)" % (self.status, self.reason,
                                                 self.headers, self.body[:200])


class Client:
    """A TCP connection with a read buffer, speaking HTTP/WebSocket by hand."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.held = []
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- bytes --
    def send(self, data):
        self.sock.sendall(data)

    def send_split(self, data):
        """Send data and wait until the broker has read it, so that whatever
        is sent next reaches the broker in a read of its own."""
        self.sock.sendall(data)
        wait_peer_read(self.sock)

    def dribble(self, data):
        """Send one byte at a time, each read by the broker on its own."""
        for i in range(len(data)):
            self.send_split(data[i:i + 1])

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("connection closed with %d bytes buffered: %r"
                         % (len(self.buf), self.buf[:200]))
        self.buf += chunk

    def recv_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("no %r in %d bytes" % (marker, len(self.buf)))
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def wait_eof(self, timeout=3.0):
        """True when the peer closes the TCP connection within timeout
        (bytes arriving meanwhile are kept in the buffer)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
                if not chunk:
                    return True
                self.buf += chunk
        finally:
            self.sock.settimeout(self.timeout)

    # -- HTTP --
    def read_http_response(self):
        head = self.recv_until(b"\r\n\r\n", limit=65536).decode("latin-1")
        lines = head.split("\r\n")
        proto, status, *reason = lines[0].split(" ", 2)
        assert proto.startswith("HTTP/1."), "not an HTTP status line: %r" % lines[0]
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        resp = HttpResponse(int(status), reason[0] if reason else "", headers, b"")
        clen = resp.header("Content-Length")
        if clen is not None:
            resp.body = self.recv_exact(int(clen))
        return resp

    def request(self, data):
        self.send(data if isinstance(data, bytes) else data.encode())
        return self.read_http_response()

    def handshake(self, path="/", protocols=None, key=None, headers=None,
                  omit=(), expect=101):
        """Send an upgrade request and read the answer. When expect is 101,
        also check the Upgrade, Connection and Accept headers."""
        if key is None:
            key = new_key()
        resp = self.request(upgrade_request(path, protocols, key, headers, omit))
        if expect is not None:
            assert resp.status == expect, resp
        if resp.status == 101:
            assert resp.header("Sec-WebSocket-Accept") == accept_for(key), resp
            assert (resp.header("Upgrade") or "").lower() == "websocket", resp
            assert "upgrade" in (resp.header("Connection") or "").lower(), resp
        return resp

    # -- WebSocket frames --
    def send_frame(self, opcode, payload=b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def hold(self, frame):
        """Put a frame back to be returned by the next read_frame (a data
        frame read while looking for a pong)."""
        self.held.append(frame)

    def read_frame(self):
        if self.held:
            return self.held.pop(0)
        while True:
            r = parse_frame(self.buf)
            if r is not None:
                self.buf = self.buf[r[1]:]
                return r[0]
            self._fill()

    def read_message(self, answer_pings=True):
        """The next data message (reassembled), skipping keepalive pings
        (answered) and pongs. A close frame is returned as is."""
        parts, first = [], None
        while True:
            f = self.read_frame()
            if f.opcode == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                return f
            if first is None:
                first = f
            parts.append(f.payload)
            if f.fin:
                return Frame(True, first.rsv, first.opcode, b"".join(parts), first.masked)

    def expect_close(self, code, reply=True, eof=True, eof_timeout=3.0):
        """Read until the broker's close frame (data and pings before it are
        skipped); check its code and that it is a valid server frame; answer
        it with a close as a client would (reply) and check that the broker
        then ends the TCP connection (eof). Returns the close frame."""
        while True:
            try:
                f = self.read_frame()
            except Closed as e:
                raise AssertionError("expected close %d, TCP closed first (%s)" % (code, e))
            if f.opcode == OP_CLOSE:
                break
        assert not f.masked, "server frames must not be masked: %r" % f
        assert f.close_code == code, "expected close %d, got %r" % (code, f)
        if reply:
            try:
                self.send_close(code)
            except OSError:
                pass  # the broker may already have dropped a failed connection
        if eof:
            assert self.wait_eof(eof_timeout), "broker did not close TCP after close %d" % code
        return f


def ws_client(port, path="/", protocols=("echo",), host="127.0.0.1", timeout=5.0):
    """A connected, upgraded Client."""
    c = Client(port, host, timeout)
    c.handshake(path, protocols=list(protocols) if protocols else None)
    return c
