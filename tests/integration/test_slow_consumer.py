"""A subscriber that stops reading must not slow the others down or make the
broker hold an unbounded backlog for it (DESIGN.md, "Messages and fan-out";
issue 6). Raw sockets over TCP, so that the stalled client really stops
reading (a tiny receive buffer, and nobody calling recv).

Run with /usr/bin/python3 -m pytest tests/integration/test_slow_consumer.py.
"""

import socket
import struct
import threading
import time

from test_mqtt import _remlen, _s, connect_packet

WAIT = 10.0
SIZE = 4096          # payload bytes
COUNT = 3000         # 12 MB in all, far past every buffer on the way
BATCH = 100
HIGH_WATER = 32768
LIMITS = ["--set", "out_high_water=%d" % HIGH_WATER, "--set", "out_hard_limit=1048576",
          "--set", "mqtt_max_queued=50", "--set", "mqtt_max_inflight=10"]


def payload(i):
    return struct.pack("!I", i) + b"x" * (SIZE - 4)


# ---------------------------------------------------------------- MQTT

class Reader:
    """What both readers share: a thread collecting the sequence numbers of
    received messages (the subclass's _loop), and waiting on them."""

    def _init_reader(self, read):
        self.seqs = []
        self.cond = threading.Condition()
        self.eof = False
        if read:
            self.start()

    def _got(self, seq):
        with self.cond:
            self.seqs.append(seq)
            self.cond.notify_all()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self._loop()
        except (EOFError, OSError):
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait_count(self, n, timeout=WAIT):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.seqs) >= n or self.eof, timeout)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass



def mqtt_subscribe_packet(topic, qos, pid=1):
    body = struct.pack("!H", pid) + _s(topic) + bytes([qos])
    return b"\x82" + _remlen(len(body)) + body


def mqtt_publish_packet(topic, data, qos=0, pid=0):
    body = _s(topic) + (struct.pack("!H", pid) if qos else b"") + data
    return bytes([0x30 | qos << 1]) + _remlen(len(body)) + body


class MqttReader(Reader):
    """Reads PUBLISH packets on a thread, acknowledging QoS 1 unless told
    not to read at all."""

    def __init__(self, broker, cid, topic, qos=0, rcvbuf=None, read=True):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", broker.ports["mqtt"]))
        self.s.settimeout(WAIT)
        self.s.sendall(connect_packet(cid))
        self.buf = b""
        assert self._packet()[0] == 0x20
        self.s.sendall(mqtt_subscribe_packet(topic, qos))
        assert self._packet()[0] == 0x90
        self.acks = {}
        self._init_reader(read)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def _packet(self):
        self._fill(2)
        i, mul, rem = 1, 1, 0
        while True:
            self._fill(i + 1)
            b = self.buf[i]
            rem += (b & 0x7F) * mul
            mul *= 128
            i += 1
            if not b & 0x80:
                break
        self._fill(i + rem)
        first, body = self.buf[0], self.buf[i:i + rem]
        self.buf = self.buf[i + rem:]
        return first, body

    def _loop(self):
        while True:
            first, body = self._packet()
            kind = first >> 4
            if kind == 3:
                qos = (first >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                off = 2 + tl
                if qos:
                    pid = body[off:off + 2]
                    off += 2
                    self.s.sendall(b"\x40\x02" + pid)
                self._got(struct.unpack("!I", body[off:off + 4])[0])
            elif kind == 4:
                with self.cond:
                    self.acks[struct.unpack("!H", body[:2])[0]] = True
                    self.cond.notify_all()


# ---------------------------------------------------------------- STOMP

def stomp_frame(cmd, headers, body=b""):
    head = cmd + "\n" + "".join("%s:%s\n" % kv for kv in headers.items()) + "\n"
    return head.encode() + body + b"\0"


class StompReader(Reader):
    """A STOMP 1.2 client on raw TCP that collects MESSAGE bodies."""

    def __init__(self, broker, dest, rcvbuf=None, read=True):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", broker.ports["stomp"]))
        self.s.settimeout(WAIT)
        self.buf = b""
        self.s.sendall(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/",
                                               "heart-beat": "0,0"}))
        assert self._frame()[0] == "CONNECTED"
        self.s.sendall(stomp_frame("SUBSCRIBE", {"id": "0", "destination": dest,
                                                 "receipt": "sub"}))
        assert self._frame()[0] == "RECEIPT"
        self._init_reader(read)

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _frame(self):
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\n\n")
            if end < 0:
                self._fill()
                continue
            lines = self.buf[:end].decode().split("\n")
            headers = dict(line.split(":", 1) for line in lines[1:])
            length = int(headers.get("content-length", "-1"))
            start = end + 2
            if length >= 0:
                while len(self.buf) < start + length + 1:
                    self._fill()
                body = self.buf[start:start + length]
                self.buf = self.buf[start + length + 1:]
            else:
                while self.buf.find(b"\0", start) < 0:
                    self._fill()
                nul = self.buf.find(b"\0", start)
                body = self.buf[start:nul]
                self.buf = self.buf[nul + 1:]
            return lines[0], headers, body

    def _loop(self):
        while True:
            cmd, _, body = self._frame()
            if cmd == "MESSAGE":
                self._got(struct.unpack("!I", body[:4])[0])


# ---------------------------------------------------------------- tests

def run_fan_out(make_reader, publish, extra=lambda: None):
    """Three readers and one stalled subscriber; the publisher paces itself
    on the readers only. Returns (readers, stalled)."""
    stalled = make_reader(rcvbuf=4096, read=False)
    readers = [make_reader() for _ in range(3)]
    for start in range(0, COUNT, BATCH):
        for i in range(start, start + BATCH):
            publish(i)
        for r in readers:
            assert r.wait_count(start + BATCH), \
                "a reader got %d of %d messages while another subscriber was stalled" % (
                    len(r.seqs), start + BATCH)
    for r in readers:
        assert r.seqs == list(range(COUNT)), "a reader lost or reordered messages"
    return readers, stalled


def check_stalled_bounded(stalled, publish_last):
    """The stalled subscriber got a bounded part of the stream, in order, and
    is still served once it reads again."""
    stalled.start()
    # Reading again, it first gets the backlog the broker held for it, then
    # anything published after. A message published while the broker still
    # counts it as slow is dropped like any other, so the marker COUNT goes
    # out again until one arrives; the whole backlog came before it.
    def marker_in():
        return bool(stalled.seqs) and stalled.seqs[-1] == COUNT or stalled.eof

    deadline = time.monotonic() + WAIT
    while True:
        publish_last(COUNT)
        with stalled.cond:
            if stalled.cond.wait_for(marker_in, 0.2):
                got = [s for s in stalled.seqs if s < COUNT]
                break
        assert time.monotonic() < deadline, "the stalled subscriber is no longer served"
    assert not stalled.eof, "a slow QoS 0 subscriber should lose messages, not its connection"
    assert 0 < len(got) < COUNT // 2, \
        "the stalled subscriber got %d of %d: its backlog was not bounded" % (len(got), COUNT)
    assert got == sorted(got)
    assert stalled.seqs[-1] == COUNT


def test_mqtt_stalled_subscriber(start_broker):
    b = start_broker(args=LIMITS)
    n = [0]

    def make_reader(**kw):
        n[0] += 1
        return MqttReader(b, "r%d" % n[0], "slow/t", **kw)

    pub = socket.create_connection(("127.0.0.1", b.ports["mqtt"]), timeout=WAIT)
    pub.sendall(connect_packet("pub"))
    assert pub.recv(4) == b"\x20\x02\x00\x00"

    def publish(i):
        pub.sendall(mqtt_publish_packet("slow/t", payload(i)))

    readers, stalled = run_fan_out(make_reader, publish)
    check_stalled_bounded(stalled, publish)
    for r in readers + [stalled]:
        r.close()
    pub.close()


def test_stomp_stalled_subscriber(start_broker):
    b = start_broker(args=LIMITS)

    def make_reader(**kw):
        return StompReader(b, "/topic/slow.t", **kw)

    pub = socket.create_connection(("127.0.0.1", b.ports["stomp"]), timeout=WAIT)
    pub.sendall(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/"}))
    pub.recv(4096)

    def publish(i):
        pub.sendall(stomp_frame("SEND", {"destination": "/topic/slow.t",
                                         "content-length": str(SIZE)}, payload(i)))

    readers, stalled = run_fan_out(make_reader, publish)
    check_stalled_bounded(stalled, publish)
    for r in readers + [stalled]:
        r.close()
    pub.close()


def test_mqtt_qos1_subscriber_that_never_acks(start_broker):
    """QoS 1: the silent subscriber's window (mqtt_max_inflight) and queue
    (mqtt_max_queued) bound what is held for it; the publisher gets every
    PUBACK and the others every message."""
    b = start_broker(args=LIMITS)
    silent = MqttReader(b, "silent", "q/t", qos=1, read=False)
    readers = [MqttReader(b, "r%d" % i, "q/t", qos=1) for i in range(2)]
    pub = MqttReader(b, "pub", "unused/topic", qos=1)
    total, batch = 600, 40      # a batch fits a reader's window + queue
    for start in range(0, total, batch):
        for i in range(start, start + batch):
            pub.s.sendall(mqtt_publish_packet("q/t", payload(i)[:64], qos=1, pid=i + 1))
        for r in readers:
            assert r.wait_count(start + batch), "reader got %d of %d" % (len(r.seqs), start + batch)
    for r in readers:
        assert r.seqs == list(range(total))
    with pub.cond:
        assert pub.cond.wait_for(lambda: len(pub.acks) >= total, WAIT), \
            "publisher got %d of %d PUBACKs" % (len(pub.acks), total)
    b.wait_log("queue full (mqtt_max_queued 50)")
    for r in readers + [silent, pub]:
        r.close()
