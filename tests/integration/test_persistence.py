"""Persistence integration tests: what survives a restart of the real broker
on the same --db file, and what a killed broker (SIGKILL) still owes the
clients whose acknowledgements it sent.

- a graceful restart keeps retained messages, persistent MQTT sessions (their
  subscriptions and the QoS 1/2 messages queued while the client was away),
  STOMP queue messages, and redelivers a delivered-but-unacked one;
- --db :memory: keeps none of it;
- a crash loop: publishers at full speed, SIGKILL at a random moment, and
  every message whose PUBACK / PUBREC / RECEIPT was seen must be there after
  the restart (QoS 2 exactly once). WSB_CRASH_SEED=<n> replays one run;
- an inbound QoS 2 PUBLISH resent after a crash is delivered once;
- a database from a newer wsbroker is refused with a clear message;
- queue_max_messages refuses the SEND past the cap and keeps the rest.

Clients are raw sockets (MQTT 3.1.1 and STOMP 1.2) so that each test knows
exactly which acknowledgements arrived before the kill.

Run: WSB_BUILD_DIR=<build dir> /usr/bin/python3 -m pytest tests/integration/test_persistence.py
"""

import collections
import os
import random
import re
import signal
import socket
import sqlite3
import struct
import threading
import time

import pytest

from test_mqtt import _remlen, _s, connect_packet

WAIT = 5.0
QUIET = 0.3

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, DISCONNECT = 8, 9, 14


# ---------------------------------------------------------------- MQTT wire

def publish_packet(topic, payload, qos=0, pid=0, dup=False, retain=False):
    body = _s(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    b0 = 0x30 | (0x08 if dup else 0) | qos << 1 | (1 if retain else 0)
    return bytes([b0]) + _remlen(len(body)) + body


def ack_packet(kind, pid):
    """PUBACK, PUBREC, PUBREL (flags 0010) or PUBCOMP for pid."""
    return bytes([kind << 4 | (0x02 if kind == PUBREL else 0), 2]) + struct.pack("!H", pid)


Msg = collections.namedtuple("Msg", "topic payload qos retain dup pid")


def parse_publish(flags, body):
    qos = (flags >> 1) & 3
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen].decode()
    i = 2 + tlen
    pid = 0
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    return Msg(topic, bytes(body[i:]), qos, bool(flags & 1), bool(flags & 8), pid)


class _Reader:
    """The read loop both raw connections share: parse what is buffered
    (the subclass's _parse), else wait for more until the deadline."""

    def _next(self, timeout, deadline, closed_msg):
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is not None:
                return p
            if deadline is None:
                self.s.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                raise EOFError(closed_msg)
            self.buf += d


class MqttConn(_Reader):
    """A raw MQTT 3.1.1 client. A subscriber's collect() answers PUBLISH and
    PUBREL as a correct receiver does and hands back each message once: a
    QoS 2 PUBLISH whose packet id awaits our PUBCOMP is a resend, counted in
    resends, not a new message."""

    def __init__(self, broker, client_id, clean=True, keepalive=60):
        self.client_id = client_id
        self.s = socket.create_connection(("127.0.0.1", broker.port("mqtt")), timeout=WAIT)
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.awaiting_rel = set()
        self.resends = 0
        self.unexpected = []
        self.next_pid = 0
        self.send(connect_packet(client_id, clean, keepalive))
        p = self.packet()
        assert p is not None and p[0] == CONNACK, "no CONNACK for %s: %r" % (client_id, p)
        assert len(p[2]) == 2 and p[2][1] == 0, "CONNACK refused %s: %r" % (client_id, p[2])
        self.session_present = p[2][0] & 1

    def send(self, data):
        with self.lock:
            self.s.sendall(data)

    def _parse(self):
        buf = self.buf
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return None
            b = buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            assert i <= 4, "bad remaining length from broker"
        if len(buf) < i + n:
            return None
        p = (buf[0] >> 4, buf[0] & 0x0F, bytes(buf[i:i + n]))
        del buf[:i + n]
        return p

    def packet(self, timeout=WAIT, deadline=None):
        """(type, flags, body); None after timeout (or at deadline); EOFError
        when the broker closed. timeout=None blocks."""
        return self._next(timeout, deadline,
                          "broker closed the connection of %s" % self.client_id)

    def expect(self, kind, pid=None, timeout=WAIT):
        p = self.packet(timeout)
        assert p is not None, "%s: no packet type %d within %.1f s" % (self.client_id, kind, timeout)
        assert p[0] == kind, "%s: expected packet type %d, got %r" % (self.client_id, kind, p)
        if pid is not None:
            assert p[2][:2] == struct.pack("!H", pid), \
                "%s: packet type %d for id %r, expected %d" % (self.client_id, kind, p[2], pid)
        return p

    def subscribe(self, filters):
        """filters: [(filter, qos)]; waits for the SUBACK and checks the grant."""
        body = struct.pack("!H", 1) + b"".join(_s(f) + bytes([q]) for f, q in filters)
        self.send(b"\x82" + _remlen(len(body)) + body)
        p = self.expect(SUBACK, 1)
        assert list(p[2][2:]) == [q for _, q in filters], "SUBACK %r" % (p[2],)

    def pid(self):
        self.next_pid = self.next_pid % 65535 + 1
        return self.next_pid

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish and, for QoS 1/2, wait for the whole acknowledgement flow."""
        pid = self.pid() if qos else 0
        self.send(publish_packet(topic, payload, qos, pid, retain=retain))
        if qos == 1:
            self.expect(PUBACK, pid)
        elif qos == 2:
            self.expect(PUBREC, pid)
            self.send(ack_packet(PUBREL, pid))
            self.expect(PUBCOMP, pid)

    def _handle(self, p, got):
        kind, flags, body = p
        if kind == PUBLISH:
            m = parse_publish(flags, body)
            if m.qos == 1:
                self.send(ack_packet(PUBACK, m.pid))
            elif m.qos == 2:
                self.send(ack_packet(PUBREC, m.pid))
                if m.pid in self.awaiting_rel:
                    self.resends += 1
                    return None
                self.awaiting_rel.add(m.pid)
            got.append(m)
            return m
        if kind == PUBREL:
            pid = struct.unpack("!H", body[:2])[0]
            self.awaiting_rel.discard(pid)
            self.send(ack_packet(PUBCOMP, pid))
        else:
            self.unexpected.append(p)
        return None

    def collect(self, want=(), key=lambda m: m.payload, quiet=QUIET, timeout=WAIT):
        """Messages received until every key in want has arrived and then
        nothing for quiet seconds, or until timeout."""
        missing = set(want)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            until = deadline if missing else min(deadline, time.monotonic() + quiet)
            p = self.packet(deadline=until)
            if p is None:
                if not missing or time.monotonic() >= deadline:
                    return got
                continue
            m = self._handle(p, got)
            if m is not None:
                missing.discard(key(m))

    def disconnect(self):
        try:
            self.send(b"\xe0\x00")
        except OSError:
            pass
        self.close()

    def close(self):
        self.s.close()


# ---------------------------------------------------------------- STOMP wire

ESCAPES = {"\\n": "\n", "\\r": "\r", "\\c": ":", "\\\\": "\\"}


def unescape(text):
    return re.sub(r"\\.", lambda m: ESCAPES.get(m.group(0), m.group(0)), text)


class StompConn(_Reader):
    """A raw STOMP 1.2 client without heart-beats."""

    def __init__(self, broker):
        self.s = socket.create_connection(("127.0.0.1", broker.port("stomp")), timeout=WAIT)
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.rid = 0
        self.pending = collections.deque()     # MESSAGEs read while awaiting a RECEIPT
        self.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost",
                                    "heart-beat": "0,0"})
        f = self.frame()
        assert f is not None and f[0] == "CONNECTED", "no CONNECTED: %r" % (f,)

    def send_frame(self, cmd, headers, body=b""):
        head = cmd + "\n" + "".join("%s:%s\n" % kv for kv in headers.items()) + "\n"
        with self.lock:
            self.s.sendall(head.encode() + body + b"\0")

    def _parse(self):
        buf = self.buf
        while buf[:1] == b"\n" or buf[:2] == b"\r\n":
            del buf[:1 if buf[:1] == b"\n" else 2]
        end = buf.find(b"\n\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).decode().split("\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.rstrip("\r").partition(":")
            headers.setdefault(unescape(k), unescape(v))
        start = end + 2
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(buf) < start + n + 1:
                return None
            assert buf[start + n] == 0, "frame body longer than its content-length"
            stop = start + n
        else:
            stop = buf.find(b"\0", start)
            if stop < 0:
                return None
        f = (lines[0].rstrip("\r"), headers, bytes(buf[start:stop]))
        del buf[:stop + 1]
        return f

    def frame(self, timeout=WAIT, deadline=None):
        """(command, headers, body), None after timeout, EOFError on close."""
        return self._next(timeout, deadline, "broker closed the STOMP connection")

    def next_rid(self, prefix="r"):
        self.rid += 1
        return "%s%d" % (prefix, self.rid)

    def receipted(self, cmd, headers, body=b""):
        rid = self.next_rid()
        self.send_frame(cmd, dict(headers, receipt=rid), body)
        deadline = time.monotonic() + WAIT
        while True:
            f = self.frame(deadline=deadline)
            assert f is not None, "no RECEIPT for %s within %.1f s" % (cmd, WAIT)
            if f[0] != "MESSAGE":   # a queue may deliver before the SUBSCRIBE's RECEIPT
                break
            self.pending.append(f)
        assert f[0] == "RECEIPT" and f[1].get("receipt-id") == rid, \
            "expected RECEIPT %s for %s, got %r" % (rid, cmd, f)

    def message(self, timeout=WAIT):
        """The next MESSAGE, or None after timeout."""
        if self.pending:
            return self.pending.popleft()
        f = self.frame(timeout)
        assert f is None or f[0] == "MESSAGE", "unexpected frame %r" % (f,)
        return f

    def send(self, dest, body):
        self.receipted("SEND", {"destination": dest}, body)

    def subscribe(self, dest, sid, ack="auto"):
        self.receipted("SUBSCRIBE", {"destination": dest, "id": sid, "ack": ack})

    def collect(self, want=(), quiet=QUIET, timeout=WAIT):
        """MESSAGE frames until every body in want has arrived and then
        nothing for quiet seconds, or until timeout."""
        missing = set(want)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            until = deadline if missing else min(deadline, time.monotonic() + quiet)
            f = self.pending.popleft() if self.pending else self.frame(deadline=until)
            if f is None:
                if not missing or time.monotonic() >= deadline:
                    return got
                continue
            assert f[0] == "MESSAGE", "unexpected frame %r" % (f,)
            got.append(f)
            missing.discard(f[2])

    def close(self):
        self.s.close()


@pytest.fixture
def net(start_broker):
    """Opens raw connections and closes those left open before the brokers
    are stopped, so that no broker waits out its shutdown timeout on us."""
    made = []

    class Net:
        def mqtt(self, broker, client_id, **kw):
            c = MqttConn(broker, client_id, **kw)
            made.append(c)
            return c

        def stomp(self, broker):
            c = StompConn(broker)
            made.append(c)
            return c
    yield Net()
    for c in made:
        c.close()


def db_args(tmp_path, *extra):
    return ["--db", str(tmp_path / "w.db")] + list(extra)


def topics_of(msgs):
    return sorted((m.topic, m.payload, m.qos, m.retain) for m in msgs)


# ---------------------------------------------------------------- graceful restart

def test_graceful_restart_keeps_retained_sessions_and_queues(start_broker, tmp_path, net):
    args = db_args(tmp_path)
    b = start_broker(args=args)

    away = net.mqtt(b, "keeper", clean=False)
    assert away.session_present == 0
    away.subscribe([("keep/#", 2)])
    away.disconnect()

    pub = net.mqtt(b, "keep-pub")
    pub.publish("ret/a", b"alpha", 1, retain=True)
    pub.publish("ret/b", b"bravo", 0, retain=True)
    pub.publish("ret/c/deep", b"charlie", 2, retain=True)
    pub.publish("ret/gone", b"soon cleared", 1, retain=True)
    pub.publish("ret/gone", b"", 1, retain=True)
    pub.publish("keep/one", b"qos 1 while away", 1)
    pub.publish("keep/two", b"qos 2 while away", 2)
    pub.disconnect()

    st = net.stomp(b)
    for i in range(3):
        st.send("/queue/keep", b"kept %d" % i)
    st.send("/queue/pending", b"delivered, never acked")
    cons = net.stomp(b)
    cons.subscribe("/queue/pending", "p", ack="client")
    f = cons.message()
    assert f is not None and f[0] == "MESSAGE" and f[2] == b"delivered, never acked", f
    assert f[1].get("redelivered") != "true", f[1]
    st.close()

    # The consumer is still connected, holding the message, when the broker
    # is told to stop; it reads whatever goodbye comes until the close.
    b.send_signal(signal.SIGTERM)
    try:
        while cons.frame(timeout=10) is not None:
            pass
    except EOFError:
        pass
    cons.close()
    assert b.stop() == 0, b.log()[-4000:]

    b = start_broker(args=args)
    reader = net.mqtt(b, "ret-reader")
    reader.subscribe([("ret/#", 2)])
    got = reader.collect(want={b"alpha", b"bravo", b"charlie"})
    assert topics_of(got) == [("ret/a", b"alpha", 1, True), ("ret/b", b"bravo", 0, True),
                              ("ret/c/deep", b"charlie", 2, True)]

    back = net.mqtt(b, "keeper", clean=False)
    assert back.session_present == 1
    got = back.collect(want={b"qos 1 while away", b"qos 2 while away"})
    assert [(m.topic, m.payload, m.qos) for m in got] == \
        [("keep/one", b"qos 1 while away", 1), ("keep/two", b"qos 2 while away", 2)]
    # The subscription came back with the session: no SUBSCRIBE this time.
    live = net.mqtt(b, "keep-live")
    live.publish("keep/live", b"after restart", 2)
    got = back.collect(want={b"after restart"})
    assert [(m.topic, m.payload, m.qos) for m in got] == [("keep/live", b"after restart", 2)]

    c = net.stomp(b)
    c.subscribe("/queue/keep", "k")
    got = c.collect(want={b"kept 0", b"kept 1", b"kept 2"})
    assert [f[2] for f in got] == [b"kept 0", b"kept 1", b"kept 2"]
    assert all(f[1].get("redelivered") != "true" for f in got), [f[1] for f in got]
    c.subscribe("/queue/pending", "p", ack="client-individual")
    got = c.collect(want={b"delivered, never acked"})
    assert [f[2] for f in got] == [b"delivered, never acked"]
    assert got[0][1].get("redelivered") == "true", got[0][1]
    c.receipted("ACK", {"id": got[0][1]["ack"]})
    for conn in (c, reader, back, live):
        conn.close()
    assert b.stop() == 0, b.log()[-4000:]

    # What was consumed or acknowledged stays gone; the retained stay.
    b = start_broker(args=args)
    c = net.stomp(b)
    c.subscribe("/queue/keep", "k")
    c.subscribe("/queue/pending", "p", ack="client-individual")
    assert c.collect() == []
    back = net.mqtt(b, "keeper", clean=False)
    assert back.session_present == 1
    assert back.collect() == []
    reader = net.mqtt(b, "ret-reader-2")
    reader.subscribe([("ret/#", 0)])
    assert sorted(m.topic for m in reader.collect(want={b"alpha", b"bravo", b"charlie"})) == \
        ["ret/a", "ret/b", "ret/c/deep"]


def test_memory_db_keeps_nothing(start_broker, net):
    args = ["--db", ":memory:"]
    b = start_broker(args=args)
    away = net.mqtt(b, "forgetful", clean=False)
    away.subscribe([("mem/#", 1)])
    away.disconnect()
    pub = net.mqtt(b, "mem-pub")
    pub.publish("mem/ret", b"retained in memory", 1, retain=True)
    pub.publish("mem/x", b"queued in memory", 1)
    st = net.stomp(b)
    st.send("/queue/mem", b"in a memory queue")
    # Before the restart all of it is there.
    r = net.mqtt(b, "mem-reader")
    r.subscribe([("mem/#", 1)])
    assert [m.payload for m in r.collect(want={b"retained in memory"})] == [b"retained in memory"]
    r.disconnect()
    pub.disconnect()
    st.close()
    assert b.stop() == 0

    b = start_broker(args=args)
    back = net.mqtt(b, "forgetful", clean=False)
    assert back.session_present == 0
    assert back.collect() == []
    r = net.mqtt(b, "mem-reader")
    r.subscribe([("mem/#", 1)])
    assert r.collect() == []
    c = net.stomp(b)
    c.subscribe("/queue/mem", "m")
    assert c.collect() == []


# ---------------------------------------------------------------- crash loop

CRASH_ARGS = ["--set", "mqtt_max_queued=1000000", "--set", "mqtt_max_inflight=1000"]
CRASH_ROUNDS = 8
CRASH_MIN_ROUNDS = 6
CRASH_BUDGET_S = 50.0       # no new round starts after this
WINDOW = 256                # unacknowledged messages per publisher
RETAINED_TOPICS = 1000      # retained publishes cycle over this many topics


class Flood:
    """Sends as fast as the broker acknowledges, WINDOW messages ahead, until
    stopped or the broker is gone. sent: every key handed to the socket;
    acked: keys whose acknowledgement arrived (PUBACK, PUBREC or RECEIPT)."""

    def __init__(self, name):
        self.name = name
        self.window = threading.Semaphore(WINDOW)
        self.inflight = {}
        self.sent = []
        self.acked = set()
        self.errors = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._writer, daemon=True),
                        threading.Thread(target=self._reader, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)
        assert not any(t.is_alive() for t in self.threads), "%s: thread stuck" % self.name
        self.close()

    def _writer(self):
        i = 0
        while not self.stopping.is_set():
            if not self.window.acquire(timeout=0.05):
                continue
            tag, key, data = self.next(i)
            self.inflight[tag] = key
            self.sent.append(key)
            try:
                self.write(data)
            except OSError:
                return
            i += 1

    def _reader(self):
        while True:
            try:
                self.read_one()
            except (EOFError, OSError):
                return

    def acknowledged(self, tag, done):
        key = self.inflight.get(tag)
        if key is None:
            self.errors.append("acknowledgement for %r, which is not in flight" % (tag,))
            return
        self.acked.add(key)
        if done:
            del self.inflight[tag]
            self.window.release()


class MqttFlood(Flood):
    def __init__(self, broker, name, qos, topic_of, retain=False):
        super().__init__(name)
        self.conn = MqttConn(broker, name)
        self.qos, self.topic_of, self.retain = qos, topic_of, retain

    def next(self, i):
        pid = i % 65535 + 1
        key = b"%s-%d" % (self.name.encode(), i)
        return pid, key, publish_packet(self.topic_of(i), key, self.qos, pid, retain=self.retain)

    def write(self, data):
        self.conn.send(data)

    def read_one(self):
        kind, _, body = self.conn.packet(timeout=None)
        pid = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None
        if kind == PUBACK and self.qos == 1:
            self.acknowledged(pid, True)
        elif kind == PUBREC and self.qos == 2:
            self.acknowledged(pid, False)
            self.conn.send(ack_packet(PUBREL, pid))
        elif kind == PUBCOMP and self.qos == 2:
            if self.inflight.pop(pid, None) is None:
                self.errors.append("PUBCOMP for %d, not in flight" % pid)
            else:
                self.window.release()
        else:
            self.errors.append("unexpected packet %r" % ((kind, body[:40]),))

    def close(self):
        self.conn.close()


class StompFlood(Flood):
    def __init__(self, broker, name, dest):
        super().__init__(name)
        self.conn = StompConn(broker)
        self.dest = dest

    def next(self, i):
        key = b"%s-%d" % (self.name.encode(), i)
        rid = "s%d" % i
        head = "SEND\ndestination:%s\nreceipt:%s\ncontent-length:%d\n\n" % (self.dest, rid, len(key))
        return rid, key, head.encode() + key + b"\0"

    def write(self, data):
        with self.conn.lock:
            self.conn.s.sendall(data)

    def read_one(self):
        f = self.conn.frame(timeout=None)
        if f[0] == "RECEIPT":
            self.acknowledged(f[1].get("receipt-id"), True)
        else:
            self.errors.append("unexpected frame %r" % ((f[0], f[1]),))

    def close(self):
        self.conn.close()


def crash_round(start_broker, args, n, run_s, why):
    b = start_broker(args=args)
    q1_topic, q2_topic = "crash%d/q1" % n, "crash%d/q2" % n
    subs = {1: "crash%d-sub1" % n, 2: "crash%d-sub2" % n}
    for qos, topic in ((1, q1_topic), (2, q2_topic)):
        c = MqttConn(b, subs[qos], clean=False)
        c.subscribe([(topic, qos)])
        c.disconnect()

    floods = [MqttFlood(b, "c%dq1" % n, 1, lambda i: q1_topic),
              MqttFlood(b, "c%dq2" % n, 2, lambda i: q2_topic),
              MqttFlood(b, "c%dret" % n, 1, lambda i: "crash%d/ret/%d" % (n, i % RETAINED_TOPICS),
                        retain=True),
              StompFlood(b, "c%dst" % n, "/queue/crash%d" % n)]
    for f in floods:
        f.start()
    time.sleep(run_s)
    b.kill()
    for f in floods:
        f.stop()
    q1, q2, ret, st = floods
    for f in floods:
        assert not f.errors, "%s: %s: %s" % (why, f.name, f.errors[:5])
        assert f.acked, "%s: %s: nothing acknowledged in %.2f s (%d sent)" % (
            why, f.name, run_s, len(f.sent))

    b = start_broker(args=args)
    deadline_s = 10.0
    # QoS 1: at least once. Nothing that was never sent.
    c = MqttConn(b, subs[1], clean=False)
    assert c.session_present == 1, why
    got = c.collect(want=q1.acked, timeout=deadline_s)
    keys = set(m.payload for m in got)
    lost = q1.acked - keys
    assert not lost, "%s: %d of %d PUBACKed QoS 1 messages lost, e.g. %r" % (
        why, len(lost), len(q1.acked), sorted(lost)[:5])
    assert keys <= set(q1.sent), "%s: QoS 1 messages never published: %r" % (
        why, sorted(keys - set(q1.sent))[:5])
    assert all(m.topic == q1_topic and m.qos == 1 for m in got), why
    assert not c.unexpected, "%s: %r" % (why, c.unexpected[:3])
    c.disconnect()

    # QoS 2: exactly once.
    c = MqttConn(b, subs[2], clean=False)
    assert c.session_present == 1, why
    got = c.collect(want=q2.acked, timeout=deadline_s)
    counts = collections.Counter(m.payload for m in got)
    lost = q2.acked - set(counts)
    twice = sorted(k for k, v in counts.items() if v > 1)
    assert not lost, "%s: %d of %d PUBRECed QoS 2 messages lost, e.g. %r" % (
        why, len(lost), len(q2.acked), sorted(lost)[:5])
    assert not twice, "%s: QoS 2 messages delivered twice: %r" % (why, twice[:5])
    assert set(counts) <= set(q2.sent), why
    assert all(m.topic == q2_topic and m.qos == 2 for m in got), why
    assert not c.unexpected, "%s: %r" % (why, c.unexpected[:3])
    c.disconnect()

    # Retained: each topic holds its last acknowledged message, or one sent
    # after it (committed, its PUBACK lost in the kill); never an older one.
    def index(key):
        return int(key.rsplit(b"-", 1)[1])
    last_acked = {}
    for k in ret.acked:
        t = "crash%d/ret/%d" % (n, index(k) % RETAINED_TOPICS)
        last_acked[t] = max(last_acked.get(t, -1), index(k))
    c = MqttConn(b, "crash%d-ret-reader" % n)
    c.subscribe([("crash%d/ret/#" % n, 0)])
    got = c.collect(want=set(last_acked), key=lambda m: m.topic, timeout=deadline_s)
    have = {m.topic: m.payload for m in got}
    sent = set(ret.sent)
    stale = sorted((t, i, have.get(t)) for t, i in last_acked.items()
                   if t not in have or index(have[t]) < i)
    assert not stale, "%s: %d of %d retained topics lost or older than their last PUBACK, " \
        "e.g. (topic, last acked, retained) %r" % (why, len(stale), len(last_acked), stale[:5])
    assert all(p in sent and m.retain for m in got for p in [m.payload]), why
    assert len(got) == len(have), "%s: a retained topic delivered twice" % why
    c.disconnect()

    # The queue: every receipted SEND.
    c = StompConn(b)
    c.subscribe("/queue/crash%d" % n, "q")
    got = c.collect(want=st.acked, timeout=deadline_s)
    keys = set(f[2] for f in got)
    lost = st.acked - keys
    assert not lost, "%s: %d of %d receipted STOMP messages lost, e.g. %r" % (
        why, len(lost), len(st.acked), sorted(lost)[:5])
    assert keys <= set(st.sent), why
    c.close()
    assert b.stop() == 0, "%s: %s" % (why, b.log()[-4000:])
    print("%s: acknowledged/sent %s" % (why, ", ".join(
        "%s %d/%d" % (f.name, len(f.acked), len(f.sent)) for f in floods)))


def test_crash_loop_keeps_every_acknowledged_message(start_broker, tmp_path):
    seed = int(os.environ.get("WSB_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    args = db_args(tmp_path, *CRASH_ARGS)
    t0 = time.monotonic()
    for n in range(CRASH_ROUNDS):
        if n >= CRASH_MIN_ROUNDS and time.monotonic() - t0 > CRASH_BUDGET_S:
            break
        run_s = rng.uniform(0.3, 1.5)
        why = "WSB_CRASH_SEED=%d round %d (killed after %.2f s)" % (seed, n, run_s)
        crash_round(start_broker, args, n, run_s, why)


# ---------------------------------------------------------------- QoS 2 across a crash

def test_inbound_qos2_resent_after_kill_is_delivered_once(start_broker, tmp_path, net):
    args = db_args(tmp_path)
    b = start_broker(args=args)
    sub = net.mqtt(b, "eo-sub", clean=False)
    sub.subscribe([("eo/x", 2)])
    sub.disconnect()
    pub = net.mqtt(b, "eo-pub", clean=False)
    pub.send(publish_packet("eo/x", b"exactly once", 2, pid=7))
    pub.expect(PUBREC, 7)
    b.kill()
    pub.close()

    b = start_broker(args=args)
    pub = net.mqtt(b, "eo-pub", clean=False)
    assert pub.session_present == 1
    pub.send(publish_packet("eo/x", b"exactly once", 2, pid=7, dup=True))
    pub.expect(PUBREC, 7)
    sub = net.mqtt(b, "eo-sub", clean=False)
    assert sub.session_present == 1
    got = sub.collect(want={b"exactly once"})
    assert [(m.topic, m.payload, m.qos) for m in got] == [("eo/x", b"exactly once", 2)]
    pub.send(ack_packet(PUBREL, 7))
    pub.expect(PUBCOMP, 7)
    assert sub.collect() == []
    # Packet id 7 is free again: the next PUBLISH with it is a new message.
    pub.send(publish_packet("eo/x", b"a new message", 2, pid=7))
    pub.expect(PUBREC, 7)
    pub.send(ack_packet(PUBREL, 7))
    pub.expect(PUBCOMP, 7)
    got = sub.collect(want={b"a new message"})
    assert [m.payload for m in got] == [b"a new message"]
    assert not sub.unexpected and not pub.unexpected


# ---------------------------------------------------------------- schema version

def test_newer_database_is_refused(start_broker, tmp_path):
    db = tmp_path / "w.db"
    b = start_broker(args=["--db", str(db)])
    assert b.stop() == 0
    con = sqlite3.connect(str(db))
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "schema_version" in tables, "no schema_version table in %s: %r" % (db, tables)
    (current,) = con.execute("SELECT version FROM schema_version").fetchone()
    assert current >= 1
    newer = current + 1
    con.execute("UPDATE schema_version SET version = ?", (newer,))
    con.commit()
    con.close()

    b = start_broker(args=["--db", str(db)], wait=False)
    rc = b.wait(10)
    log = b.log()
    assert rc > 0, "broker exit status %s with a newer database:\n%s" % (rc, log)
    assert re.search(r"schema version %d\b" % newer, log) and "newer" in log, log
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(newer,)]
    con.close()


# ---------------------------------------------------------------- queue cap

def test_queue_cap_refuses_the_sixth_and_keeps_five(start_broker, tmp_path, net):
    args = db_args(tmp_path, "--set", "queue_max_messages=5")
    b = start_broker(args=args)
    st = net.stomp(b)
    for i in range(5):
        st.send("/queue/capped", b"m%d" % i)
    st.send_frame("SEND", {"destination": "/queue/capped", "receipt": "sixth"}, b"m5")
    f = st.frame()
    assert f is not None and f[0] == "ERROR", "sixth SEND past the cap got %r" % (f,)
    assert f[1].get("receipt-id") == "sixth", f[1]
    b.kill()

    b = start_broker(args=args)
    # The five are back, and they still fill the queue.
    st = net.stomp(b)
    st.send_frame("SEND", {"destination": "/queue/capped", "receipt": "again"}, b"m6")
    f = st.frame()
    assert f is not None and f[0] == "ERROR", "SEND to a full queue after restart got %r" % (f,)
    c = net.stomp(b)
    c.subscribe("/queue/capped", "c")
    got = c.collect(want={b"m%d" % i for i in range(5)})
    assert [f[2] for f in got] == [b"m%d" % i for i in range(5)]
    c.send("/queue/capped", b"room again")
    got = c.collect(want={b"room again"})
    assert [f[2] for f in got] == [b"room again"]
