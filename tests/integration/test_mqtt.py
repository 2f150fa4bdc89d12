"""MQTT integration tests (issue 4) with Debian's paho-mqtt, over TCP and over
WebSocket (/mqtt), plus raw sockets where a well-behaved library cannot be
made to misbehave (killed sockets, silence past the keepalive, takeover of a
connection that must not reconnect) and stomp.py for the round trips
between MQTT and STOMP.

Run with /usr/bin/python3 -m pytest tests/integration/test_mqtt.py.
"""

import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import stomp
import websockets.client
import websockets.exceptions

import asyncio

WAIT = 5.0
QUIET = 0.3


# ---------------------------------------------------------------- paho

class Paho:
    """A paho client with its own network thread and an inbox."""

    # Notified whenever any client's inbox grows, so that a test can wait
    # for messages spread over several clients.
    arrived = threading.Condition()

    def __init__(self, broker, client_id="", transport="tcp", clean=True,
                 protocol=mqtt.MQTTv311, will=None, keepalive=60):
        self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=protocol,
                             transport="websockets" if transport == "ws" else "tcp")
        if transport == "ws":
            self.c.ws_set_options(path="/mqtt")
        self.inbox = queue.Queue()
        self.connected = threading.Event()
        self.flags = {}
        self.rc = None
        self.granted = {}
        self.suback = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        if will:
            self.c.will_set(*will)
        port = broker.ports["mqtt"] if transport == "tcp" else broker.ports["ws"]
        self.c.connect("127.0.0.1", port, keepalive)
        self.c.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        assert self.rc == 0, "CONNACK %s" % self.rc

    def _on_connect(self, c, userdata, flags, rc):
        self.flags, self.rc = flags, rc
        self.connected.set()

    def _on_message(self, c, userdata, m):
        with Paho.arrived:
            self.inbox.put(m)
            Paho.arrived.notify_all()

    def _on_subscribe(self, c, userdata, mid, granted):
        with self.suback:
            self.granted[mid] = granted
            self.suback.notify_all()

    def subscribe(self, topic, qos=0):
        """Subscribe and wait for the SUBACK; returns the granted QoS list."""
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.suback:
            assert self.suback.wait_for(lambda: mid in self.granted, WAIT), "no SUBACK"
            return list(self.granted[mid])

    def publish(self, topic, payload, qos=0, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def get(self, timeout=WAIT):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no message within %s s" % timeout)

    @staticmethod
    def wait_total(clients, n, timeout=WAIT):
        """Wait until the inboxes of clients hold n messages between them."""
        with Paho.arrived:
            assert Paho.arrived.wait_for(
                lambda: sum(p.inbox.qsize() for p in clients) >= n, timeout), \
                "%d of %d messages arrived" % (sum(p.inbox.qsize() for p in clients), n)

    def expect_none(self, timeout=QUIET):
        """Nothing (more) arrives: an absence can only be watched for a while."""
        try:
            m = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        pytest.fail("unexpected message on %r: %r" % (m.topic, m.payload[:60]))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(broker):
    """Factory for Paho clients, all disconnected at teardown."""
    made = []

    def make(*a, **kw):
        p = Paho(broker, *a, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


TRANSPORTS = ["tcp", "ws"]


# ---------------------------------------------------------------- raw packets

def _remlen(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _s(v):
    v = v.encode() if isinstance(v, str) else v
    return struct.pack("!H", len(v)) + v


def connect_packet(client_id, clean=True, keepalive=60, will=None, level=4):
    name = b"MQTT" if level >= 4 else b"MQIsdp"
    flags = 0x02 if clean else 0
    payload = _s(client_id)
    if will:
        topic, body, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += _s(topic) + _s(body)
    var = _s(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == 5:
        var += b"\x00"          # no properties
    body = var + payload
    return b"\x10" + _remlen(len(body)) + body


class Raw:
    """A bare TCP connection to the MQTT listener."""

    def __init__(self, broker, packet):
        self.s = socket.create_connection(("127.0.0.1", broker.ports["mqtt"]), timeout=WAIT)
        self.s.sendall(packet)

    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def closed_within(self, seconds):
        """True when the broker closes the connection within seconds."""
        self.s.settimeout(seconds)
        try:
            while self.s.recv(4096):
                pass
            return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def raw_connect(broker, client_id, **kw):
    r = Raw(broker, connect_packet(client_id, **kw))
    assert r.read_exact(4) == b"\x20\x02\x00\x00"
    return r


# ---------------------------------------------------------------- QoS

@pytest.mark.parametrize("sub_t,pub_t", [("tcp", "tcp"), ("ws", "ws"), ("ws", "tcp"), ("tcp", "ws")])
def test_qos_round_trips(clients, sub_t, pub_t):
    sub = clients("sub-" + sub_t, transport=sub_t)
    pub = clients("pub-" + pub_t, transport=pub_t)
    assert sub.subscribe("rt/#", 2) == [2]
    for qos in (0, 1, 2):
        pub.publish("rt/q%d" % qos, b"payload %d \x00\xff" % qos, qos)
        m = sub.get()
        assert (m.topic, m.payload, m.qos, m.retain) == \
            ("rt/q%d" % qos, b"payload %d \x00\xff" % qos, qos, False)
    # Outbound QoS is the lower of the publish and the subscription.
    assert sub.subscribe("low/#", 1) == [1]
    pub.publish("low/x", b"two", 2)
    m = sub.get()
    assert (m.payload, m.qos) == (b"two", 1)
    sub.expect_none()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exactly_once_500_qos2(clients, transport):
    sub = clients("eo-sub", transport=transport)
    pub = clients("eo-pub", transport=transport)
    sub.subscribe("eo", 2)
    infos = [pub.c.publish("eo", b"%d" % i, 2) for i in range(500)]
    for info in infos:
        info.wait_for_publish(WAIT)
    got = [int(sub.get().payload) for _ in range(500)]
    assert got == list(range(500))
    sub.expect_none()


def test_qos2_resent_before_pubrel_is_not_delivered_twice(broker, clients):
    # paho never resends on a healthy link: send every PUBLISH twice by hand,
    # the copy with DUP set, before any PUBREL.
    sub = clients("dup-sub")
    sub.subscribe("dup", 2)
    r = raw_connect(broker, "dup-pub")
    out = b""
    for i in range(1, 501):
        body = _s("dup") + struct.pack("!H", i) + b"%d" % i
        out += b"\x34" + _remlen(len(body)) + body
        out += b"\x3c" + _remlen(len(body)) + body
    r.s.sendall(out)
    recs = r.read_exact(4 * 1000)
    assert recs == b"".join(b"\x50\x02" + struct.pack("!H", i) * 1 for i in range(1, 501)
                            for _ in range(2))
    r.s.sendall(b"".join(b"\x62\x02" + struct.pack("!H", i) for i in range(1, 501)))
    assert r.read_exact(4 * 500) == b"".join(b"\x70\x02" + struct.pack("!H", i)
                                           for i in range(1, 501))
    got = [int(sub.get().payload) for _ in range(500)]
    assert got == list(range(1, 501))
    sub.expect_none()
    r.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_1000_messages_in_order(clients, transport):
    sub = clients("order-sub", transport=transport)
    pub = clients("order-pub", transport=transport)
    sub.subscribe("order", 1)
    infos = [pub.c.publish("order", b"%d" % i, 1) for i in range(1000)]
    for info in infos:
        info.wait_for_publish(WAIT)
    got = [int(sub.get().payload) for _ in range(1000)]
    assert got == list(range(1000))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_256k_payload(clients, transport):
    sub = clients("big-sub", transport=transport)
    pub = clients("big-pub", transport=transport)
    sub.subscribe("big", 1)
    payload = bytes((i * 31 + 7) & 0xFF for i in range(256 * 1024))
    pub.publish("big", payload, 1)
    m = sub.get()
    assert len(m.payload) == len(payload) and m.payload == payload


def test_mqtt31_round_trip(clients):
    sub = clients("v31-sub", transport="ws", protocol=mqtt.MQTTv31)
    pub = clients("v31-pub", protocol=mqtt.MQTTv31)
    sub.subscribe("v31/+", 1)
    pub.publish("v31/a", b"old protocol", 1)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("v31/a", b"old protocol", 1)


# ---------------------------------------------------------------- retained

def test_retained_late_subscriber_and_clear(clients):
    pub = clients("ret-pub")
    pub.publish("ret/a", b"kept", 1, retain=True)
    pub.publish("ret/b", b"also", 1, retain=True)
    late = clients("ret-late", transport="ws")
    late.subscribe("ret/#", 0)
    got = sorted((m.topic, m.payload, m.retain, m.qos) for m in (late.get(), late.get()))
    assert got == [("ret/a", b"kept", True, 0), ("ret/b", b"also", True, 0)]
    # A live publish reaches a current subscriber with RETAIN 0.
    pub.publish("ret/a", b"live", 0, retain=True)
    m = late.get()
    assert (m.payload, m.retain) == (b"live", False)
    # An empty retained payload clears the topic.
    pub.publish("ret/a", b"", 0, retain=True)
    assert late.get().payload == b""
    later = clients("ret-later")
    later.subscribe("ret/#", 0)
    m = later.get()
    assert (m.topic, m.payload, m.retain) == ("ret/b", b"also", True)
    later.expect_none()


# ---------------------------------------------------------------- will

def test_will_on_killed_socket(broker, clients):
    watcher = clients("will-watch", transport="ws")
    watcher.subscribe("will/#", 1)
    r = raw_connect(broker, "dying", will=("will/dying", b"gone", 1, False))
    r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.close()                                   # RST, no DISCONNECT
    m = watcher.get()
    assert (m.topic, m.payload, m.qos) == ("will/dying", b"gone", 1)
    # A client that says DISCONNECT leaves no will behind.
    polite = Paho(broker, "polite", will=("will/polite", b"should not appear", 1, False))
    polite.close()
    watcher.expect_none()


def test_keepalive_expiry(broker, clients):
    watcher = clients("ka-watch")
    watcher.subscribe("ka/#", 0)
    r = raw_connect(broker, "sleeper", keepalive=1, will=("ka/sleeper", b"timed out", 0, False))
    t0 = time.monotonic()
    # The client now stays silent on purpose: that silence is what is tested,
    # and the broker's close is the event waited for.
    assert r.closed_within(4), "broker kept a silent client past 1.5 x keepalive"
    elapsed = time.monotonic() - t0
    assert 1.2 <= elapsed < 3.5, elapsed
    assert watcher.get().payload == b"timed out"
    r.close()


# ---------------------------------------------------------------- sessions

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_persistent_session_catches_up(broker, clients, transport):
    p = Paho(broker, "persist-" + transport, transport=transport, clean=False)
    assert p.flags["session present"] == 0
    p.subscribe("persist/#", 1)
    p.close()
    pub = clients("persist-pub")
    for i in range(5):
        pub.publish("persist/x", b"while away %d" % i, 1)
        if i == 2:
            pub.publish("persist/x", b"qos0 is not kept", 0)
    p = clients("persist-" + transport, transport=transport, clean=False)
    assert p.flags["session present"] == 1
    assert [p.get().payload for _ in range(5)] == [b"while away %d" % i for i in range(5)]
    p.expect_none()
    # The subscription is part of the session too.
    pub.publish("persist/y", b"live", 1)
    assert p.get().payload == b"live"


def test_clean_session_starts_fresh(broker, clients):
    p = Paho(broker, "fresh", clean=False)
    p.subscribe("fresh/#", 1)
    p.close()
    p = clients("fresh", clean=True)
    assert p.flags["session present"] == 0
    pub = clients("fresh-pub")
    pub.publish("fresh/x", b"nobody listens", 1)
    p.expect_none()


def test_absent_session_expires_without_a_connect(start_broker):
    """mqtt_session_expiry ends an absent session on time even when nobody
    connects: its stored messages go with it."""
    b = start_broker(args=("--set", "mqtt_session_expiry=1"))
    p = Paho(b, "short-lived", clean=False)
    p.subscribe("short/#", 1)
    pub = Paho(b, "short-pub")
    pub.publish("short/x", b"kept for a second", 1)
    pub.close()
    p.close()
    start = len(b.log())
    t0 = time.monotonic()
    # Nobody connects while we wait: only the broker's own timer can do it.
    b.wait_log("persistent session expired", timeout=4.0, start=start)
    assert time.monotonic() - t0 >= 0.5, "expired before its second was up"
    back = Paho(b, "short-lived", clean=False)
    try:
        assert back.flags["session present"] == 0
        back.expect_none()
    finally:
        back.close()


def test_takeover(broker, clients):
    watcher = clients("to-watch")
    watcher.subscribe("to/#", 0)
    old = raw_connect(broker, "twin", will=("to/will", b"old one gone", 0, False))
    new = clients("twin", transport="ws")
    assert old.closed_within(WAIT), "the old connection was not closed"
    assert watcher.get().payload == b"old one gone"
    new.subscribe("to/new", 0)
    watcher.publish("to/new", b"reaches the new one")
    assert new.get().payload == b"reaches the new one"
    old.close()


def test_v5_connect_gets_unacceptable_version(broker):
    r = Raw(broker, connect_packet("five", level=5))
    assert r.read_exact(4) == b"\x20\x02\x00\x01"
    assert r.closed_within(WAIT)
    r.close()


def test_text_frame_closes_with_1003(broker):
    async def go():
        async with websockets.client.connect(broker.ws_url("/mqtt"), subprotocols=["mqtt"],
                                             open_timeout=5, close_timeout=3) as ws:
            assert ws.subprotocol == "mqtt"
            await ws.send("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code
    assert asyncio.run(asyncio.wait_for(go(), 10)) == 1003


# ---------------------------------------------------------------- topics

def test_wildcards_and_dollar_topics(clients):
    sub = clients("wild")
    for f in ("#", "sport/+/score", "+/x"):
        sub.subscribe(f, 0)
    pub = clients("wild-pub")
    # One delivery per message even when several filters match.
    for t in ("sport/tennis/score", "sport/tennis/player", "a/x", "$foo/x", "$SYS/forged"):
        pub.publish(t, t.encode(), 1)
    got = sorted(sub.get().topic for _ in range(3))
    assert got == ["a/x", "sport/tennis/player", "sport/tennis/score"]
    sub.expect_none()
    # A $ topic needs a filter that names its first level.
    sub.subscribe("$foo/#", 0)
    pub.publish("$foo/x", b"seen", 1)
    assert sub.get().topic == "$foo/x"


def test_invalid_filters_fail_one_by_one(broker):
    # paho refuses to send bad filters, so this one is raw.
    r = raw_connect(broker, "raw-sub")
    body = struct.pack("!H", 7)
    for f, q in (("ok/+", 1), ("bad/#/x", 0), ("b+d", 0), ("", 0), ("#", 2)):
        body += _s(f) + bytes([q])
    r.s.sendall(b"\x82" + _remlen(len(body)) + body)
    assert r.read_exact(9) == b"\x90\x07\x00\x07\x01\x80\x80\x80\x02"
    r.close()


def test_shared_subscription(clients):
    a, b = clients("share-a"), clients("share-b", transport="ws")
    a.subscribe("$share/g/jobs/#", 0)
    b.subscribe("$share/g/jobs/#", 0)
    pub = clients("share-pub")
    for i in range(10):
        pub.publish("jobs/x", b"%d" % i, 1)
    Paho.wait_total((a, b), 10)
    na, nb = a.inbox.qsize(), b.inbox.qsize()
    assert (na, nb) == (5, 5)
    # Each message went to exactly one member of the group.
    got = [int(p.inbox.get_nowait().payload) for p in (a, b) for _ in range(5)]
    assert sorted(got) == list(range(10))


# ---------------------------------------------------------------- STOMP

class StompInbox(stomp.ConnectionListener):
    def __init__(self):
        self.frames = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.frames.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))


@pytest.fixture
def stomp_conn(broker):
    conn = stomp.Connection([("127.0.0.1", broker.ports["stomp"])], heartbeats=(0, 0),
                            auto_decode=False)
    inbox = StompInbox()
    conn.set_listener("", inbox)
    conn.connect(wait=True)
    yield conn, inbox
    conn.disconnect()


def test_mqtt_to_stomp(clients, stomp_conn):
    conn, inbox = stomp_conn
    for i, dest in enumerate(("/topic/chat.room1", "/topic/chat.*", "/topic/chat.#")):
        conn.subscribe(dest, id=str(i), ack="auto", receipt="s%d" % i)
        assert inbox.receipts.get(timeout=WAIT) == "s%d" % i
    pub = clients("to-stomp")
    body = "héllo ☃ \x01".encode()
    pub.publish("chat/room1", body, 1)
    frames = [inbox.frames.get(timeout=WAIT) for _ in range(3)]
    assert sorted(f.headers["subscription"] for f in frames) == ["0", "1", "2"]
    for f in frames:
        assert f.headers["destination"] == "/topic/chat.room1"
        assert f.body == body


def test_stomp_to_mqtt(clients, stomp_conn):
    conn, inbox = stomp_conn
    subs = [clients("from-stomp-%d" % i, transport=t)
            for i, t in enumerate(("tcp", "ws", "tcp"))]
    for s, f in zip(subs, ("chat/room1", "chat/+", "#")):
        s.subscribe(f, 1)
    body = b"\x00binary\xff from STOMP"
    conn.send("/topic/chat.room1", body, receipt="sent")
    assert inbox.receipts.get(timeout=WAIT) == "sent"
    for s in subs:
        m = s.get()
        assert (m.topic, m.payload) == ("chat/room1", body)
