"""STOMP integration tests (issue 3) with Debian's stomp.py over TCP against
the real broker: each version, topics and broadcast, receipts, the three ack
modes, NACK, queues with competing consumers and redelivery, transactions,
heart-beats, binary bodies and header escaping. Malformed frames go through
raw sockets, and every test that makes a client misbehave finishes by
checking that the same broker still serves a fresh client.

Run: WSB_BUILD_DIR=<build dir> /usr/bin/python3 -m pytest tests/integration/test_stomp.py
"""

import queue
import re
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest
import stomp

HEARTBEAT_MS = 300          # what the broker offers; it drops a client silent 2x this
MAX_BODY = 65536
QUEUE_MAX = 50
BROKER_ARGS = ["--set", "stomp_heartbeat_ms=%d" % HEARTBEAT_MS,
               "--set", "stomp_max_body=%d" % MAX_BODY,
               "--set", "stomp_max_header_size=1024",
               "--set", "stomp_max_headers=32",
               "--set", "queue_max_messages=%d" % QUEUE_MAX]

CONNECTIONS = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}


@pytest.fixture
def sb(start_broker):
    return start_broker("wsbroker", args=BROKER_ARGS)


class Collector(stomp.ConnectionListener):
    """Everything a connection received, in queues a test can wait on."""

    def __init__(self, conn=None):
        self.conn = conn
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.connected = None
        self.disconnected = threading.Event()
        self.heartbeat_timeouts = 0

    def on_connected(self, frame):
        self.connected = frame

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.set()

    def on_heartbeat_timeout(self):
        self.heartbeat_timeouts += 1

    def message(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no MESSAGE within %.1f s" % timeout)

    def receipt(self, rid, timeout=5.0):
        try:
            got = self.receipts.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no RECEIPT %s within %.1f s" % (rid, timeout))
        assert got == rid

    def settle(self):
        """A RECEIPT round trip on this connection. The broker answers
        frames in order and sends a MESSAGE as it routes it, so once the
        RECEIPT is in, so is every frame it sent before."""
        _rid[0] += 1
        rid = "settle-%d" % _rid[0]
        self.conn.unsubscribe(id="no-such-subscription", receipt=rid)   # answered, changes nothing
        self.receipt(rid)

    def no_message(self, *senders):
        """Nothing arrived: settle the connections whose frames could have
        caused a MESSAGE, then this one, and look."""
        for col in senders + (self,):
            col.settle()
        assert self.messages.empty(), "unexpected MESSAGE: %r" % (self.messages.queue[0].body,)


class Clients:
    """Opens stomp.py connections and disconnects those left at the end."""

    def __init__(self, port):
        self.port = port
        self.open = []

    def __call__(self, version="1.2", heartbeats=None, auto_decode=True, **connect_kw):
        kw = {"auto_decode": auto_decode, "reconnect_attempts_max": 1}
        if heartbeats is not None:
            kw["heartbeats"] = heartbeats
        conn = CONNECTIONS[version]([("127.0.0.1", self.port)], **kw)
        col = Collector(conn)
        conn.set_listener("c", col)
        conn.connect(wait=True, **connect_kw)
        self.open.append(conn)
        return conn, col

    def close_all(self):
        for c in self.open:
            try:
                if c.is_connected():
                    c.disconnect()
            except Exception:
                pass


@pytest.fixture
def clients(sb):
    cs = Clients(sb.ports["stomp"])
    yield cs
    cs.close_all()


_rid = [0]


def subscribe(conn, col, dest, sid="s", ack="auto"):
    """Subscribe and wait for its receipt, so that what is sent next is seen."""
    _rid[0] += 1
    rid = "sub-%d" % _rid[0]
    if isinstance(conn, stomp.Connection10):
        conn.subscribe(dest, id=sid, ack=ack, receipt=rid)
    else:
        conn.subscribe(dest, sid, ack=ack, receipt=rid)
    col.receipt(rid)


def send_sync(conn, col, dest, body, **headers):
    """SEND with a receipt: once it is back the broker has routed it."""
    _rid[0] += 1
    rid = "send-%d" % _rid[0]
    conn.send(dest, body, headers=dict(headers, receipt=rid))
    col.receipt(rid)


def ack_id(frame):
    return frame.headers.get("ack") or frame.headers["message-id"]


def assert_serves_fresh_client(port):
    conn = stomp.Connection12([("127.0.0.1", port)], reconnect_attempts_max=1)
    col = Collector()
    conn.set_listener("c", col)
    conn.connect(wait=True)
    subscribe(conn, col, "/topic/fresh")
    conn.send("/topic/fresh", "still here")
    assert col.message().body == "still here"
    conn.disconnect()


# ---- raw sockets, for what a well-behaved library will not send ----

ESCAPES = {"\\n": "\n", "\\r": "\r", "\\c": ":", "\\\\": "\\"}


def unescape(text):
    """STOMP 1.2 header unescaping (the raw client speaks 1.2)."""
    return re.sub(r"\\.", lambda m: ESCAPES[m.group(0)], text)


class Raw:
    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.beats = 0

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, deadline):
        self.s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            d = b""
        if not d:
            raise EOFError
        self.buf += d
        return d

    def frame(self, timeout=5.0):
        """(command, headers, body); heart-beat EOLs are counted in beats."""
        deadline = time.monotonic() + timeout
        while True:
            while self.buf[:1] == b"\n" or self.buf[:2] == b"\r\n":
                self.beats += 1
                self.buf = self.buf[1:] if self.buf[:1] == b"\n" else self.buf[2:]
            end = self.buf.find(b"\n\n")
            if end >= 0:
                lines = self.buf[:end].decode().split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(unescape(k), unescape(v))
                start = end + 2
                if "content-length" in headers:
                    n = int(headers["content-length"])
                    if len(self.buf) >= start + n + 1:
                        assert self.buf[start + n] == 0
                        body = self.buf[start:start + n]
                        self.buf = self.buf[start + n + 1:]
                        return lines[0], headers, body
                else:
                    nul = self.buf.find(b"\0", start)
                    if nul >= 0:
                        body = self.buf[start:nul]
                        self.buf = self.buf[nul + 1:]
                        return lines[0], headers, body
            if time.monotonic() > deadline:
                pytest.fail("no complete frame within %.1f s (have %r)" % (timeout, self.buf[:200]))
            self._fill(deadline)

    def connect(self, version="1.2", heart_beat=None):
        hb = "heart-beat:%s\n" % heart_beat if heart_beat else ""
        self.send(("CONNECT\naccept-version:%s\nhost:localhost\n%s\n\0" % (version, hb)).encode())
        cmd, headers, _ = self.frame()
        assert cmd == "CONNECTED", headers
        return headers

    def wait_eof(self, timeout=3.0):
        """Seconds until the broker closed the connection; fails otherwise."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            while time.monotonic() < deadline:
                self._fill(deadline)
        except EOFError:
            return time.monotonic() - t0
        pytest.fail("connection still open after %.1f s" % timeout)


# ---- connecting ----

@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_each_version_connects_and_round_trips(clients, version):
    conn, col = clients(version)
    h = col.connected.headers
    if version == "1.0":
        assert "version" not in h
    else:
        assert h["version"] == version
        assert "heart-beat" in h
    assert h["server"].startswith("wsbroker/")
    assert h["session"]
    subscribe(conn, col, "/topic/hello.world", sid="0")
    conn.send("/topic/hello.world", "hi %s" % version, headers={"x-custom": "yes"})
    m = col.message()
    assert m.body == "hi %s" % version
    assert m.headers["destination"] == "/topic/hello.world"
    assert m.headers["x-custom"] == "yes"
    assert m.headers["message-id"]
    if version != "1.0":
        assert m.headers["subscription"] == "0"


def test_stomp_frame_and_version_negotiation(sb):
    r = Raw(sb.ports["stomp"])
    r.send(b"STOMP\naccept-version:1.1,1.2,9.9\nhost:x\n\n\0")
    cmd, h, _ = r.frame()
    assert cmd == "CONNECTED" and h["version"] == "1.2"
    r.close()
    r = Raw(sb.ports["stomp"])
    r.send(b"CONNECT\naccept-version:2.0\n\n\0")
    cmd, h, _ = r.frame()
    assert cmd == "ERROR" and h["version"] == "1.0,1.1,1.2"
    r.wait_eof()
    r.close()


def test_broadcast_to_many_subscribers(clients):
    subs = []
    for i in range(8):
        conn, col = clients("1.2" if i % 2 else "1.1")
        subscribe(conn, col, "/topic/news.#", sid="n%d" % i)
        subs.append(col)
    pub, pcol = clients()
    for i in range(5):
        pub.send("/topic/news.sport", "item %d" % i)
    for col in subs:
        got = [col.message().body for _ in range(5)]
        assert got == ["item %d" % i for i in range(5)]
        assert col.messages.empty()


def test_wildcard_subscriptions(clients):
    conn, col = clients()
    subscribe(conn, col, "/topic/a.*", sid="star")
    pub, pcol = clients()
    pub.send("/topic/a.b.c", "too deep")
    pub.send("/topic/a.b", "one level")
    m = col.message()
    assert m.body == "one level" and m.headers["destination"] == "/topic/a.b"
    col.no_message()


def test_receipts(clients):
    conn, col = clients()
    conn.subscribe("/queue/r", "s", receipt="r-sub")
    col.receipt("r-sub")
    conn.send("/queue/r", "x", headers={"receipt": "r-send"})
    col.receipt("r-send")
    col.message()
    conn.unsubscribe("s", receipt="r-unsub")
    col.receipt("r-unsub")
    conn.disconnect(receipt="r-bye")
    assert col.disconnected.wait(5)


# ---- acknowledgements ----

def fill_queue(pub, pcol, dest, n):
    for i in range(n):
        send_sync(pub, pcol, dest, "m%d" % i)


def test_ack_auto_consumes(clients):
    pub, pcol = clients()
    fill_queue(pub, pcol, "/queue/auto", 3)
    conn, col = clients()
    subscribe(conn, col, "/queue/auto", ack="auto")
    assert [col.message().body for _ in range(3)] == ["m0", "m1", "m2"]
    conn.disconnect()
    other, ocol = clients()
    subscribe(other, ocol, "/queue/auto")
    ocol.no_message()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_ack_client_is_cumulative(clients, version):
    pub, pcol = clients()
    dest = "/queue/cum%s" % version.replace(".", "")
    fill_queue(pub, pcol, dest, 3)
    conn, col = clients(version)
    subscribe(conn, col, dest, ack="client")
    frames = [col.message() for _ in range(3)]
    if version == "1.1":
        conn.ack(frames[1].headers["message-id"], "s", receipt="a")
    else:
        conn.ack(ack_id(frames[1]), receipt="a")
    col.receipt("a")
    conn.disconnect()
    other, ocol = clients()
    subscribe(other, ocol, dest)
    m = ocol.message()
    assert m.body == "m2"
    assert m.headers.get("redelivered") == "true"
    ocol.no_message()


def test_ack_client_individual(clients):
    pub, pcol = clients()
    fill_queue(pub, pcol, "/queue/ind", 3)
    conn, col = clients("1.2")
    subscribe(conn, col, "/queue/ind", ack="client-individual")
    frames = [col.message() for _ in range(3)]
    assert all(f.headers["ack"] for f in frames)
    conn.ack(frames[1].headers["ack"], receipt="a")
    col.receipt("a")
    conn.disconnect()
    other, ocol = clients()
    subscribe(other, ocol, "/queue/ind")
    assert [ocol.message().body for _ in range(2)] == ["m0", "m2"]
    ocol.no_message()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_redelivers(clients, version):
    pub, pcol = clients()
    dest = "/queue/nack%s" % version.replace(".", "")
    fill_queue(pub, pcol, dest, 1)
    conn, col = clients(version)
    subscribe(conn, col, dest, ack="client-individual")
    first = col.message()
    assert "redelivered" not in first.headers
    if version == "1.1":
        conn.nack(first.headers["message-id"], "s")
    else:
        conn.nack(first.headers["ack"])
    again = col.message()
    assert again.body == "m0"
    assert again.headers["redelivered"] == "true"
    if version == "1.1":
        conn.ack(again.headers["message-id"], "s", receipt="a")
    else:
        conn.ack(again.headers["ack"], receipt="a")
    col.receipt("a")
    col.no_message()


def test_ack_for_unknown_message_is_an_error(sb, clients):
    conn, col = clients()
    conn.ack("no-such-message", receipt="bad")
    err = col.errors.get(timeout=5)
    assert "unknown message id" in err.headers["message"]
    assert err.headers["receipt-id"] == "bad"
    assert_serves_fresh_client(sb.ports["stomp"])


# ---- queues ----

def test_queue_competing_consumers(clients):
    a, acol = clients()
    b, bcol = clients("1.1")
    subscribe(a, acol, "/queue/work")
    subscribe(b, bcol, "/queue/work")
    pub, pcol = clients()
    for i in range(10):
        pub.send("/queue/work", "job %d" % i)
    got_a, got_b = [], []
    deadline = time.monotonic() + 5
    while len(got_a) + len(got_b) < 10 and time.monotonic() < deadline:
        for col, got in ((acol, got_a), (bcol, got_b)):
            try:
                got.append(col.messages.get(timeout=0.05).body)
            except queue.Empty:
                pass
    assert sorted(got_a + got_b, key=lambda s: int(s.split()[1])) == ["job %d" % i for i in range(10)]
    assert len(got_a) == 5 and len(got_b) == 5     # turn by turn
    acol.no_message(pcol)
    bcol.no_message(pcol)


def test_queue_redelivery_after_consumer_disconnects(clients):
    pub, pcol = clients()
    a, acol = clients()
    subscribe(a, acol, "/queue/rd", ack="client")
    fill_queue(pub, pcol, "/queue/rd", 3)
    assert [acol.message().body for _ in range(3)] == ["m0", "m1", "m2"]
    b, bcol = clients()
    subscribe(b, bcol, "/queue/rd", ack="client-individual")
    bcol.no_message()                          # a still holds them
    a.transport.socket.shutdown(socket.SHUT_RDWR)   # gone without ACK or DISCONNECT
    frames = [bcol.message() for _ in range(3)]
    assert [f.body for f in frames] == ["m0", "m1", "m2"]
    assert all(f.headers["redelivered"] == "true" for f in frames)


def test_queue_keeps_messages_without_consumers_then_refuses(sb, clients):
    r = Raw(sb.ports["stomp"])
    r.connect()
    for i in range(QUEUE_MAX):
        r.send(b"SEND\ndestination:/queue/full\n\nx\0")
    r.send(b"SEND\ndestination:/queue/full\nreceipt:over\n\nx\0")
    cmd, h, body = r.frame()
    assert cmd == "ERROR", (cmd, h)
    assert h["message"] == "queue full" and h["receipt-id"] == "over"
    r.wait_eof()
    r.close()
    conn, col = clients()
    subscribe(conn, col, "/queue/full")
    for _ in range(QUEUE_MAX):
        col.message()
    col.no_message()


# ---- transactions ----

def test_transaction_commit_and_abort(clients):
    sub, scol = clients()
    subscribe(sub, scol, "/topic/tx")
    conn, col = clients()
    tx = conn.begin()
    conn.send("/topic/tx", "one", transaction=tx)
    conn.send("/topic/tx", "two", transaction=tx)
    scol.no_message(col)
    conn.commit(tx)
    assert [scol.message().body for _ in range(2)] == ["one", "two"]
    tx2 = conn.begin()
    conn.send("/topic/tx", "never", transaction=tx2)
    conn.abort(tx2)
    scol.no_message(col)
    # a transaction left open at disconnect is dropped too
    tx3 = conn.begin()
    conn.send("/topic/tx", "dropped", transaction=tx3)
    conn.disconnect()
    scol.no_message()


def test_transaction_ack(clients):
    pub, pcol = clients()
    fill_queue(pub, pcol, "/queue/txack", 1)
    conn, col = clients()
    subscribe(conn, col, "/queue/txack", ack="client-individual")
    m = col.message()
    tx = conn.begin()
    conn.ack(m.headers["ack"], transaction=tx)
    conn.abort(tx)            # the ACK never happened
    conn.disconnect()
    other, ocol = clients()
    subscribe(other, ocol, "/queue/txack", ack="client-individual")
    m = ocol.message()
    assert m.body == "m0"
    tx = other.begin()
    other.ack(m.headers["ack"], transaction=tx)
    other.commit(tx)
    other.disconnect()
    third, tcol = clients()
    subscribe(third, tcol, "/queue/txack")
    tcol.no_message()


# ---- heart-beats ----

def test_heartbeats_keep_a_quiet_connection_alive(clients):
    conn, col = clients("1.2", heartbeats=(HEARTBEAT_MS, HEARTBEAT_MS))
    assert col.connected.headers["heart-beat"] == "%d,%d" % (HEARTBEAT_MS, HEARTBEAT_MS)
    subscribe(conn, col, "/topic/quiet")
    # The silence is what is under test: no event can stand for it. Well
    # past the broker's 2x limit, the client's heart-beats alone kept it.
    time.sleep(HEARTBEAT_MS * 6 / 1000.0)
    assert conn.is_connected()
    assert col.heartbeat_timeouts == 0
    pub, pcol = clients()
    pub.send("/topic/quiet", "after the silence")
    assert col.message().body == "after the silence"


def test_broker_sends_heartbeats(sb):
    r = Raw(sb.ports["stomp"])
    h = r.connect(heart_beat="0,%d" % HEARTBEAT_MS)
    assert h["heart-beat"] == "%d,0" % HEARTBEAT_MS
    deadline = time.monotonic() + 2.0
    while r.beats < 3 and time.monotonic() < deadline:
        r._fill(deadline)
        while r.buf[:1] == b"\n":
            r.beats += 1
            r.buf = r.buf[1:]
    assert r.beats >= 3
    assert r.buf == b""
    r.close()


def test_silent_client_is_dropped(sb):
    r = Raw(sb.ports["stomp"])
    h = r.connect(heart_beat="%d,0" % HEARTBEAT_MS)
    assert h["heart-beat"] == "0,%d" % HEARTBEAT_MS
    took = r.wait_eof(timeout=5.0)
    # closed after interval x grace (2x), not before
    assert took >= HEARTBEAT_MS * 2 / 1000.0 - 0.05
    r.close()
    assert_serves_fresh_client(sb.ports["stomp"])


# ---- bodies and headers ----

def test_binary_body(clients):
    body = bytes(range(256)) * 64 + b"\0\0end"
    conn, col = clients(auto_decode=False)
    subscribe(conn, col, "/queue/bin")
    conn.send("/queue/bin", body, content_type="application/octet-stream")
    m = col.message()
    assert m.body == body
    assert m.headers["content-length"] == str(len(body))
    assert m.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_header_escaping_round_trip(clients, version):
    value = "a:b\\c\nd" + ("\re" if version == "1.2" else "")
    conn, col = clients(version)
    subscribe(conn, col, "/topic/esc")
    pub, pcol = clients(version)
    pub.send("/topic/esc", "x", headers={"odd": value, "colon": "x:y:z"})
    m = col.message()
    assert m.headers["odd"] == value
    assert m.headers["colon"] == "x:y:z"


def test_cross_protocol_from_mqtt(sb, clients):
    conn, col = clients()
    subscribe(conn, col, "/topic/chat.room1")
    if hasattr(paho, "CallbackAPIVersion"):
        m = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="x-proto")
    else:
        m = paho.Client(client_id="x-proto")
    m.connect("127.0.0.1", sb.ports["mqtt"])
    m.loop_start()
    try:
        m.publish("chat/room1", b"from mqtt", qos=1).wait_for_publish(5)
        frame = col.message()
        assert frame.body == "from mqtt"
        assert frame.headers["destination"] == "/topic/chat.room1"
    finally:
        m.loop_stop()
        m.disconnect()


# ---- malformed frames: ERROR, close, and the broker carries on ----

MALFORMED = [
    ("unknown command", b"FROB\n\n\0", "unknown command"),
    ("missing colon", b"SEND\ndestination /queue/a\n\n\0", "colon"),
    ("undefined escape", b"SEND\ndestination:/queue/a\nk:a\\tb\n\n\0", "escape"),
    ("header too long", b"SEND\ndestination:/queue/a\nk:" + b"v" * 2000 + b"\n\n\0", "too long"),
    ("too many headers", b"SEND\ndestination:/queue/a\n" + b"".join(b"h%d:v\n" % i for i in range(40)) + b"\n\0",
     "too many headers"),
    ("body too large", b"SEND\ndestination:/queue/a\n\n" + b"x" * (MAX_BODY + 1) + b"\0", "too large"),
    ("content-length too large", b"SEND\ndestination:/queue/a\ncontent-length:%d\n\n" % (MAX_BODY + 1), "too large"),
    ("content-length not a number", b"SEND\ndestination:/queue/a\ncontent-length:ten\n\n\0", "content-length"),
    ("body not followed by NUL", b"SEND\ndestination:/queue/a\ncontent-length:2\n\nabc\0", "NUL"),
    ("unsupported destination", b"SEND\ndestination:/exchange/a\n\n\0", "unsupported destination"),
    ("SUBSCRIBE without id", b"SUBSCRIBE\ndestination:/topic/a\n\n\0", "missing id"),
    ("unknown transaction", b"COMMIT\ntransaction:nope\n\n\0", "unknown transaction"),
    ("server frame", b"MESSAGE\ndestination:/topic/a\n\n\0", "unexpected frame"),
]


@pytest.mark.parametrize("name,data,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_gets_error_then_close(sb, name, data, message):
    r = Raw(sb.ports["stomp"])
    r.connect()
    r.send(data)
    cmd, h, body = r.frame()
    assert cmd == "ERROR"
    assert message in h["message"], h
    r.wait_eof()
    r.close()
    assert_serves_fresh_client(sb.ports["stomp"])


def test_frame_before_connect(sb):
    r = Raw(sb.ports["stomp"])
    r.send(b"SEND\ndestination:/queue/a\nreceipt:early\n\nx\0")
    cmd, h, _ = r.frame()
    assert cmd == "ERROR" and "CONNECT" in h["message"] and h["receipt-id"] == "early"
    r.wait_eof()
    r.close()
    assert_serves_fresh_client(sb.ports["stomp"])


def test_frame_split_across_reads_and_several_in_one(sb, clients):
    conn, col = clients()
    subscribe(conn, col, "/queue/split")
    r = Raw(sb.ports["stomp"])
    r.connect()
    data = (b"SEND\ndestination:/queue/split\n\none\0\n"
            b"SEND\ndestination:/queue/split\ncontent-length:3\n\nt\0o\0\r\n"
            b"SEND\ndestination:/queue/split\nreceipt:done\n\nthree\0")
    for i in range(0, len(data), 7):
        r.send(data[i:i + 7])
        # A pause between pieces is what is under test: it makes the broker
        # read them one at a time instead of as one segment.
        time.sleep(0.002)
    cmd, h, _ = r.frame()
    assert cmd == "RECEIPT" and h["receipt-id"] == "done"
    assert [col.message().body for _ in range(3)] == ["one", "t\0o", "three"]
    r.close()
