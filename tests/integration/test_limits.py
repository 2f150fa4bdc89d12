"""Limits that keep the broker up when it faces the internet (issue 11,
"Limits, each a config key with a clear refusal"): the open-files limit and
accept pausing, max_connections, max_connections_per_ip, publish_rate_limit
and the timed soft output limit. Raw MQTT over TCP, so that each client is
one socket the test controls completely.

Run with /usr/bin/python3 -m pytest tests/integration/test_limits.py.
"""

import os
import resource
import select
import socket
import struct
import threading
import time

import pytest

import wsraw
from test_mqtt import connect_packet
from test_slow_consumer import MqttReader, mqtt_publish_packet, mqtt_subscribe_packet, stomp_frame

WAIT = 10.0
CONNACK = b"\x20\x02\x00\x00"


def mqtt_client(broker, cid, timeout=WAIT):
    s = socket.create_connection(("127.0.0.1", broker.ports["mqtt"]), timeout=timeout)
    s.sendall(connect_packet(cid))
    got = b""
    while len(got) < 4:
        chunk = s.recv(4 - len(got))
        assert chunk, "%s: connection closed before CONNACK" % cid
        got += chunk
    assert got == CONNACK
    return s


def refused(broker, cid):
    """A client the broker closes at once: EOF or reset, no CONNACK."""
    s = socket.create_connection(("127.0.0.1", broker.ports["mqtt"]), timeout=WAIT)
    try:
        s.sendall(connect_packet(cid))
        return s.recv(4) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()


def eventually_connects(broker, cid, timeout=WAIT):
    """The broker may still be reaping the client that just left: try until
    one gets in."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return mqtt_client(broker, cid)
        except (AssertionError, ConnectionResetError, BrokenPipeError):
            assert time.monotonic() < deadline, "%s never got in" % cid
            time.sleep(0.05)


def abort(s):
    """Close with a reset: whatever is still queued is thrown away."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def round_trip(sub, pub, topic):
    sub.sendall(mqtt_subscribe_packet(topic, 0))
    assert sub.recv(5)[0] == 0x90
    pub.sendall(mqtt_publish_packet(topic, b"still here"))
    got = b""
    while b"still here" not in got:
        chunk = sub.recv(4096)
        assert chunk, "subscriber closed"
        got += chunk


class Waiting:
    """Clients whose CONNECT is sent; collects CONNACKs as they come."""

    def __init__(self, broker, n, prefix):
        self.pending = {}
        self.done = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", broker.ports["mqtt"]), timeout=WAIT)
            s.sendall(connect_packet("%s%d" % (prefix, i)))
            s.setblocking(False)
            self.pending[s.fileno()] = (i, s, b"")

    def poll(self, timeout):
        """Collect CONNACKs until none arrived for `timeout` seconds."""
        while self.pending:
            r, _, _ = select.select(list(self.pending), [], [], timeout)
            if not r:
                return
            for fd in r:
                i, s, got = self.pending[fd]
                got += s.recv(4)
                if len(got) >= 4:
                    assert got == CONNACK
                    s.setblocking(True)
                    self.done.append(s)
                    del self.pending[fd]
                else:
                    self.pending[fd] = (i, s, got)

    def close(self):
        for s in self.done:
            s.close()
        for _, s, _ in self.pending.values():
            s.close()


def limit_fds_256():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_out_of_descriptors_no_spin(start_broker):
    """Under `ulimit -n 256` with 400 clients: the broker warns at start,
    does not spin, logs a bounded number of lines, keeps serving those it
    has, and takes the waiting ones once others leave."""
    b = start_broker(args=["--listen", "127.0.0.1:0/mqtt"], preexec_fn=limit_fds_256,
                     log_level="info")
    log = b.log()
    assert "max_connections 100000 is above what the open-files limit of 256" in log
    t0 = time.monotonic()
    clients = Waiting(b, 400, "c")
    b.wait_log("Too many open files", timeout=WAIT)
    clients.poll(1.0)
    first = len(clients.done)
    assert 150 < first < 256, "%d clients connected under a 256 descriptor limit" % first
    assert len(clients.pending) == 400 - first

    # The overload goes on: the broker pauses accepting, it does not spin.
    cpu0 = cpu_seconds(b.proc.pid)
    time.sleep(3.0)                       # the window CPU time is measured over
    cpu = cpu_seconds(b.proc.pid) - cpu0
    assert cpu < 0.5, "broker used %.2f s of CPU in 3 s while out of descriptors" % cpu

    # Those already connected keep working.
    round_trip(clients.done[0], clients.done[1], "fd/t")

    # One line a second at most about the failures, each with a count.
    lines = [l for l in b.log().splitlines() if "Too many open files" in l]
    elapsed = time.monotonic() - t0
    assert 1 <= len(lines) <= elapsed + 2, \
        "%d accept failure lines in %.1f s" % (len(lines), elapsed)
    assert "accepting paused for 100 ms" in lines[0]
    other = [l for l in b.log().splitlines() if "mqtt: connected" not in l]
    assert len(other) < 20, "\n".join(other)

    # Once clients leave, the waiting ones are served.
    leaving = clients.done[2:102]
    clients.done = clients.done[:2] + clients.done[102:]
    for s in leaving:
        s.close()
    before = len(clients.done)
    deadline = time.monotonic() + WAIT
    while len(clients.done) - before < 90 and time.monotonic() < deadline:
        clients.poll(0.5)
    assert len(clients.done) - before >= 90, \
        "only %d waiting clients got in after 100 left" % (len(clients.done) - before)
    assert "accept on %s works again after" % b.port_lines[0].split()[1] in b.log()
    clients.close()


def test_max_connections_pauses_accepting(start_broker):
    b = start_broker(args=["--set", "max_connections=5"], log_level="info")
    clients = Waiting(b, 12, "m")
    b.wait_log("max_connections 5 reached", timeout=WAIT)
    clients.poll(0.5)
    assert len(clients.done) == 5
    # The rest wait in the backlog, refused by nobody, and get in as
    # others leave.
    for s in clients.done[:3]:
        s.close()
    clients.done = clients.done[3:]
    deadline = time.monotonic() + WAIT
    while len(clients.done) < 5 and time.monotonic() < deadline:
        clients.poll(0.5)
    assert len(clients.done) == 5
    round_trip(clients.done[0], clients.done[-1], "mc/t")
    lines = [l for l in b.log().splitlines() if "max_connections 5 reached" in l]
    assert 1 <= len(lines) <= 3
    assert "new clients wait" in lines[0]
    clients.close()


def test_max_connections_per_ip(start_broker):
    b = start_broker(args=["--set", "max_connections_per_ip=3"])
    held = [mqtt_client(b, "ip%d" % i) for i in range(3)]
    assert refused(b, "ip3")
    line = b.wait_log("refusing connection: 127.0.0.1 has max_connections_per_ip 3 open")
    assert "peer=127.0.0.1:" in b.log()[b.log().rfind("\n", 0, line):line]
    # A flood of refusals is one line a second.
    for i in range(20):
        assert refused(b, "flood%d" % i)
    assert b.log().count("max_connections_per_ip 3 open") <= 3
    held.pop().close()
    held.append(eventually_connects(b, "ip-again"))
    round_trip(held[0], held[-1], "ip/t")
    for s in held:
        s.close()


class TimedReader(MqttReader):
    """An MQTT subscriber that notes when each message came."""

    def _got(self, seq):
        with self.cond:
            self.seqs.append((time.monotonic(), seq))
            self.cond.notify_all()

    def count_between(self, t0, t1):
        with self.cond:
            return sum(1 for t, _ in self.seqs if t0 <= t < t1)


def stomp_publisher(b, login):
    s = socket.create_connection(("127.0.0.1", b.ports["stomp"]), timeout=WAIT)
    s.sendall(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/", "login": login,
                                      "heart-beat": "0,0"}))
    assert s.recv(4096).startswith(b"CONNECTED")
    return s


@pytest.mark.parametrize("proto", ["mqtt", "stomp"])
def test_publish_rate_limit(start_broker, proto):
    rate = 100
    b = start_broker(args=["--set", "publish_rate_limit=%d" % rate,
                           "--set", "publish_rate_burst=20"])
    sub = TimedReader(b, "rate-sub", "rate/t")
    other_sub = TimedReader(b, "other-sub", "other/t")
    if proto == "mqtt":
        fast = mqtt_client(b, "fast")

        def message(i):
            return mqtt_publish_packet("rate/t", struct.pack("!I", i))
    else:
        fast = stomp_publisher(b, "fast")

        def message(i):
            return stomp_frame("SEND", {"destination": "/topic/rate.t", "content-length": "4"},
                               struct.pack("!I", i))
    stop = threading.Event()

    def flood():
        i = 0
        try:
            while not stop.is_set():
                fast.sendall(b"".join(message(i + k) for k in range(50)))
                i += 50
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    assert sub.wait_count(1)
    b.wait_log("publishing faster than publish_rate_limit 100/s")
    # Others are served as usual meanwhile.
    other = mqtt_client(b, "other")
    for i in range(10):
        other.sendall(mqtt_publish_packet("other/t", struct.pack("!I", i)))
    assert other_sub.wait_count(10, timeout=2.0), "a well-behaved publisher was slowed"
    t0 = time.monotonic()
    time.sleep(2.0)                       # the window throughput is measured over
    got = sub.count_between(t0, t0 + 2.0)
    assert 0.6 * 2 * rate <= got <= 1.4 * 2 * rate + 20, \
        "%d messages in 2 s with publish_rate_limit %d/s" % (got, rate)
    # Slowed, not dropped: what arrived is in order and gap-free.
    seqs = [s for _, s in sub.seqs]
    assert seqs == list(range(len(seqs)))
    stop.set()
    # Still connected: nothing closed it.
    r, _, _ = select.select([fast], [], [], 0)
    assert not r, "the fast publisher's connection was closed"
    assert not [l for l in b.log().splitlines() if "closing" in l or "disconnect" in l]
    assert b.log().count("publishing faster than publish_rate_limit") == 1
    abort(fast)
    for c in (other, sub, other_sub):
        c.close()


SOFT = ["--set", "out_soft_limit=64KiB", "--set", "out_soft_seconds=2"]


def fill_until_above_soft(b, pub, cid):
    """Publish 4 KiB messages until the broker says cid is above the soft
    limit; returns the log offset just past that line."""
    mark = "client=%s output above out_soft_limit" % cid
    for i in range(2000):
        pub.sendall(mqtt_publish_packet("soft/" + cid, struct.pack("!I", i) + b"x" * 4092))
        if i % 20 == 19 and mark in b.log():
            return b.wait_log(mark)
    return b.wait_log(mark)


def test_out_soft_limit_disconnects_a_stalled_reader(start_broker):
    b = start_broker(args=SOFT)
    stalled = MqttReader(b, "stalled", "soft/stalled", rcvbuf=4096, read=False)
    pub = mqtt_client(b, "pub")
    at = fill_until_above_soft(b, pub, "stalled")
    b.wait_log("client=stalled slow consumer:", timeout=2 + WAIT, start=at)
    line = b.log()[at:].split("client=stalled slow consumer:")[1].split("\n")[0]
    assert "above out_soft_limit 65536 for out_soft_seconds 2; disconnecting" in line
    stalled.start()                       # reads its backlog, then the end
    with stalled.cond:
        assert stalled.cond.wait_for(lambda: stalled.eof, WAIT), "still connected"
    pub.close()


def test_out_soft_limit_keeps_a_reader_that_catches_up(start_broker):
    b = start_broker(args=SOFT)
    reader = MqttReader(b, "dip", "soft/dip", rcvbuf=4096, read=False)
    pub = mqtt_client(b, "pub")
    at = fill_until_above_soft(b, pub, "dip")
    armed = time.monotonic()
    reader.start()
    b.wait_log("client=dip output back under out_soft_limit", start=at)
    # Past the moment the clock would have run out, it is still served.
    while time.monotonic() < armed + 2.5:
        time.sleep(0.1)
    n = len(reader.seqs)
    pub.sendall(mqtt_publish_packet("soft/dip", struct.pack("!I", 99999)))
    assert reader.wait_count(n + 1), "the reader that caught up lost its connection"
    assert not reader.eof
    assert "slow consumer" not in b.log()
    reader.close()
    pub.close()


def test_out_soft_limit_closes_websocket_with_1008(start_broker):
    """Over WebSocket the reason goes to the client: close 1008 after the
    backlog it had not read (kept short by a low out_high_water, so that
    it is read well within close_timeout_ms)."""
    b = start_broker(args=["--set", "out_soft_limit=16KiB", "--set", "out_soft_seconds=1",
                           "--set", "out_high_water=32KiB"])
    # A small receive buffer, set before connecting (after, the window
    # already offered makes the sender stall on zero-window probes).
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", b.ports["ws"]))
    ws = wsraw.Client.__new__(wsraw.Client)
    ws.sock, ws.buf, ws.held, ws.timeout = sock, b"", [], WAIT
    ws.handshake("/mqtt", protocols=["mqtt"])
    ws.send_frame(wsraw.OP_BINARY, connect_packet("wsstalled"))
    assert ws.read_message().payload == CONNACK
    ws.send_frame(wsraw.OP_BINARY, mqtt_subscribe_packet("soft/wsstalled", 0))
    assert ws.read_message().payload[0] == 0x90
    pub = mqtt_client(b, "pub")
    at = fill_until_above_soft(b, pub, "wsstalled")
    b.wait_log("client=wsstalled slow consumer:", timeout=1 + WAIT, start=at)
    f = ws.expect_close(1008)
    assert f.close_reason == b"slow consumer"
    ws.close()
    pub.close()
