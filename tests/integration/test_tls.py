"""TLS: wss, mqtts and stomps listeners, TLS on an auto listener, client
certificates (required, missing, from the wrong CA, as the login), the
minimum version, bad handshakes, and SIGHUP reloading the certificate.

Every certificate is made with the `openssl` command by conftest's `pki`
fixture: a test CA, server certificates for 127.0.0.1 and localhost, client
certificates, and a second CA that signs a client the broker must refuse."""

import asyncio
import queue
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import stomp
import websockets

WAIT = 5.0
HOST = "127.0.0.1"


def tls_conf(pki, listeners, extra=""):
    lines = ["listener %s" % l for l in listeners]
    lines += ["tls_cert %s.pem" % pki["server"], "tls_key %s.key" % pki["server"]]
    return "\n".join(lines) + "\n" + extra


def client_ctx(pki, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]) + ".pem")
    if cert:
        ctx.load_cert_chain(str(pki[cert]) + ".pem", str(pki[cert]) + ".key")
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_socket(pki, port, cert=None, max_version=None, host=HOST):
    raw = socket.create_connection((host, port), timeout=WAIT)
    return client_ctx(pki, cert, max_version).wrap_socket(raw, server_hostname=host)


def recv_until(sock, marker):
    buf = b""
    while marker not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def peer_serial(pki, port):
    with tls_socket(pki, port) as s:
        return s.getpeercert()["serialNumber"]


def file_serial(path):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=")[1].upper()


# ---- MQTT over TLS with paho ----

class Paho:
    """A connected paho client with an inbox."""

    def __init__(self, pki, port, cert=None, username=None, password=None, tls=True):
        self.inbox = queue.Queue()
        self.connack = queue.Queue()
        self.c = paho.Client(client_id="tls-%d" % time.monotonic_ns(), protocol=paho.MQTTv311)
        if tls:
            self.c.tls_set_context(client_ctx(pki, cert))
        if username:
            self.c.username_pw_set(username, password)
        self.c.on_connect = lambda c, u, f, rc: self.connack.put(rc)
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload))
        self.subs = queue.Queue()
        self.c.on_subscribe = lambda c, u, mid, q: self.subs.put(mid)
        self.c.connect(HOST, port, keepalive=30)
        self.c.loop_start()
        self.rc = self.connack.get(timeout=WAIT)

    def subscribe(self, topic):
        self.c.subscribe(topic, 1)
        self.subs.get(timeout=WAIT)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def mqtt_round_trip(pki, port, topic="tls/t", **kw):
    sub = Paho(pki, port, **kw)
    assert sub.rc == 0
    sub.subscribe(topic)
    pub = Paho(pki, port, **kw)
    pub.c.publish(topic, b"over tls", qos=1).wait_for_publish()
    assert sub.inbox.get(timeout=WAIT) == (topic, b"over tls")
    pub.close()
    sub.close()


def test_paho_over_mqtts(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts"]))
    assert b.port_lines[0].startswith("mqtts ")
    mqtt_round_trip(pki, b.port("mqtts"))


# ---- STOMP over TLS with stomp.py ----

class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.frames = queue.Queue()

    def on_message(self, frame):
        self.frames.put(frame.body)


def test_stomp_py_over_stomps(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/stomps"]))
    port = b.port("stomps")
    conns = []
    for _ in range(2):
        c = stomp.Connection12([(HOST, port)], heartbeats=(0, 0))
        c.set_ssl(for_hosts=[(HOST, port)], ca_certs=str(pki["ca"]) + ".pem")
        c.connect(wait=True)
        conns.append(c)
    sub, pub = conns
    got = Listener()
    sub.set_listener("l", got)
    sub.subscribe("/queue/tls", id="1", ack="auto")
    pub.send("/queue/tls", "hello over stomps", receipt="r1")
    assert got.frames.get(timeout=WAIT) == "hello over stomps"
    for c in conns:
        c.disconnect()


# ---- WebSocket over TLS with python websockets ----

async def _wss_stomp_and_mqtt(url, ctx):
    async with websockets.connect(url + "/stomp", ssl=ctx, subprotocols=["v12.stomp"]) as ws:
        assert ws.subprotocol == "v12.stomp"
        await ws.send("CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        reply = await asyncio.wait_for(ws.recv(), WAIT)
        assert reply.startswith("CONNECTED\n")
        await ws.send("SUBSCRIBE\nid:1\ndestination:/topic/wss.t\n\n\0"
                      "SEND\ndestination:/topic/wss.t\n\nvia wss\0")
        msg = await asyncio.wait_for(ws.recv(), WAIT)
        assert msg.startswith("MESSAGE\n") and msg.endswith("via wss\0")
    async with websockets.connect(url + "/mqtt", ssl=ctx, subprotocols=["mqtt"]) as ws:
        assert ws.subprotocol == "mqtt"
        cid = b"wss-client"
        body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
        await ws.send(bytes([0x10, len(body)]) + body)
        assert await asyncio.wait_for(ws.recv(), WAIT) == b"\x20\x02\x00\x00"


def test_websockets_over_wss(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/wss"]))
    url = "wss://localhost:%d" % b.port("wss")
    asyncio.run(_wss_stomp_and_mqtt(url, client_ctx(pki)))
    assert "TLS handshake done: TLSv1.3" in b.log()


# ---- auto: TLS and plain on one port ----

def test_auto_listener_takes_tls_and_plain(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/auto"]))
    port = b.port("auto")
    mqtt_round_trip(pki, port, topic="auto/tls")              # MQTT inside TLS
    mqtt_round_trip(pki, port, topic="auto/plain", tls=False)  # plain MQTT
    asyncio.run(_wss_stomp_and_mqtt("wss://localhost:%d" % port, client_ctx(pki)))
    with tls_socket(pki, port) as s:                          # HTTP inside TLS
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    with socket.create_connection((HOST, port), timeout=WAIT) as s:  # plain HTTP
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_auto_without_certificate_refuses_tls(start_broker, pki):
    b = start_broker(args=["--listen", "127.0.0.1:0/auto"])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_socket(pki, b.port("auto"))
    b.wait_log("TLS handshake on a listener without tls_cert; closing")


# ---- start-up refusals ----

@pytest.mark.parametrize("kind", ["wss", "mqtts", "stomps"])
def test_tls_listener_without_certificate_refuses_to_start(start_broker, kind):
    b = start_broker(args=["--listen", "127.0.0.1:0/" + kind], wait=False)
    assert b.wait() == 2
    assert "the %s listener on 127.0.0.1:0 needs tls_cert and tls_key" % kind in b.log()


def test_unreadable_key_refuses_to_start(start_broker, pki, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    conf = tls_conf(pki, ["127.0.0.1:0/mqtts"]).replace(str(pki["server"]) + ".key", str(bad))
    b = start_broker(config_text=conf, wait=False)
    assert b.wait() == 2
    assert "tls_key %s: " % bad in b.log()


# ---- client certificates ----

def test_client_certificate_required(start_broker, pki):
    extra = "tls_ca %s.pem\ntls_require_cert true\n" % pki["ca"]
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts"], extra))
    port = b.port("mqtts")
    # Missing: the handshake is refused (TLS 1.3 says so at the first read).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_socket(pki, port) as s:
            s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            assert s.recv(4) == b""
    at = b.wait_log("TLS handshake failed: peer did not return a certificate")
    # From another CA: refused.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_socket(pki, port, cert="mallory") as s:
            s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            assert s.recv(4) == b""
    b.wait_log("TLS handshake failed: certificate verify failed", start=at)
    # Signed by tls_ca: connected.
    mqtt_round_trip(pki, port, cert="alice")


def test_certificate_cn_is_the_login(start_broker, pki, tmp_path):
    users = tmp_path / "users"
    users.write_text("bob secret\n")
    extra = ("tls_ca %s.pem\ntls_cert_as_username true\nallow_anonymous false\n"
             "users_file %s\n" % (pki["ca"], users))
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts", "127.0.0.1:0/stomps"],
                                          extra))
    # MQTT: no username, no password, a certificate: accepted as alice.
    c = Paho(pki, b.port("mqtts"), cert="alice")
    assert c.rc == 0
    c.close()
    b.wait_log("login alice by client certificate")
    # Without a certificate the same anonymous CONNECT is refused.
    c = Paho(pki, b.port("mqtts"))
    assert c.rc == 5
    c.close()
    # STOMP: CONNECT without login, with a certificate.
    with tls_socket(pki, b.port("stomps"), cert="alice") as s:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        assert recv_until(s, b"\0").startswith(b"CONNECTED\n")
    with tls_socket(pki, b.port("stomps")) as s:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        assert recv_until(s, b"\0").startswith(b"ERROR\n")


# ---- versions ----

def test_min_version_13_refuses_a_12_client(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts"], "tls_min_version 1.3\n"))
    with pytest.raises(ssl.SSLError):
        tls_socket(pki, b.port("mqtts"), max_version=ssl.TLSVersion.TLSv1_2)
    b.wait_log("TLS handshake failed: unsupported protocol")
    with tls_socket(pki, b.port("mqtts")) as s:
        assert s.version() == "TLSv1.3"


def test_default_min_version_takes_12(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts"]))
    with tls_socket(pki, b.port("mqtts"), max_version=ssl.TLSVersion.TLSv1_2) as s:
        assert s.version() == "TLSv1.2"
        s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
        assert s.recv(4) == b"\x20\x02\x00\x00"


# ---- bad handshakes ----

def closed_within(sock, seconds):
    """Read until EOF (or a reset); returns the seconds it took."""
    t0 = time.monotonic()
    sock.settimeout(seconds + 2)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


@pytest.mark.parametrize("data", [
    b"CONNECT\naccept-version:1.2\n\n\0",            # plain STOMP to a TLS port
    b"\x16\x03\x01\x00\x05hello",                    # a record with garbage inside
    b"\x16\xff\xff\xff\xff" + b"\x00" * 64,          # not even a record header
])
def test_bad_handshake_is_logged_once_and_closed(start_broker, pki, data):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/stomps", "127.0.0.1:0/auto"],
                                          "handshake_timeout_ms 1000\n"))
    for kind in ("stomps", "auto"):
        if kind == "auto" and data[0] != 0x16:
            continue
        with socket.create_connection((HOST, b.port(kind)), timeout=WAIT) as s:
            s.sendall(data)
            assert closed_within(s, 1.0) < 2.0
    b.wait_log("TLS handshake failed:")
    log = b.log()
    n = 1 if data[0] != 0x16 else 2
    assert log.count("TLS handshake failed:") == n, log


def test_silent_handshake_ends_at_the_deadline(start_broker, pki):
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/mqtts"],
                                          "handshake_timeout_ms 300\n"))
    with socket.create_connection((HOST, b.port("mqtts")), timeout=WAIT) as s:
        s.sendall(b"\x16\x03\x01\x02\x00")          # a record header, then nothing
        took = closed_within(s, 0.3)
    assert 0.25 < took < 2.0
    b.wait_log("TLS handshake not completed within 300 ms; closing")


# ---- SIGHUP ----

def test_sighup_new_certificate_for_new_connections(start_broker, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(Path(str(pki["server"]) + ".pem").read_bytes())
    key.write_bytes(Path(str(pki["server"]) + ".key").read_bytes())
    b = start_broker(config_text="listener 127.0.0.1:0/mqtts\ntls_cert %s\ntls_key %s\n"
                     % (cert, key))
    port = b.port("mqtts")
    assert peer_serial(pki, port) == file_serial(str(pki["server"]) + ".pem")
    old = Paho(pki, port)
    old.subscribe("hup/t")
    # Swap in the second certificate and key, then SIGHUP.
    cert.write_bytes(Path(str(pki["server2"]) + ".pem").read_bytes())
    key.write_bytes(Path(str(pki["server2"]) + ".key").read_bytes())
    b.send_signal(signal.SIGHUP)
    b.wait_log("TLS certificate %s reloaded for new connections" % cert)
    assert peer_serial(pki, port) == file_serial(str(pki["server2"]) + ".pem")
    # The connection made before still works.
    pub = Paho(pki, port)
    pub.c.publish("hup/t", b"still here", qos=1).wait_for_publish()
    assert old.inbox.get(timeout=WAIT) == ("hup/t", b"still here")
    pub.close()
    old.close()


def test_sighup_broken_certificate_keeps_the_old(start_broker, pki, tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_bytes(Path(str(pki["server"]) + ".pem").read_bytes())
    b = start_broker(config_text="listener 127.0.0.1:0/mqtts\ntls_cert %s\ntls_key %s.key\n"
                     % (cert, pki["server"]))
    port = b.port("mqtts")
    cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    b.send_signal(signal.SIGHUP)
    b.wait_log("SIGHUP: configuration reloaded")
    log = b.log()
    assert log.count("SIGHUP: TLS not reloaded, the old certificate stays: tls_cert %s: " % cert) == 1, log
    assert "reloaded for new connections" not in log
    assert peer_serial(pki, port) == file_serial(str(pki["server"]) + ".pem")
    mqtt_round_trip(pki, port, topic="broken/t")


# ---- the way out ----

@pytest.mark.parametrize("kind", ["stomps", "auto"])
def test_close_notify_after_the_last_word(start_broker, pki, kind):
    """The broker's last word (a STOMP ERROR) is followed by close_notify: a
    client that treats a bare TCP close as truncation reads a clean end, at
    once rather than when close_timeout_ms gives up on the connection."""
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/" + kind],
                                          "close_timeout_ms 20000\n"))
    raw = socket.create_connection((HOST, b.port(kind)), timeout=WAIT)
    s = client_ctx(pki).wrap_socket(raw, server_hostname=HOST, suppress_ragged_eofs=False)
    with s:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0NONSENSE\n\n\0")
        t0 = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)   # SSLEOFError here: no close_notify came
            if not chunk:
                break
            data += chunk
        took = time.monotonic() - t0
    assert b"CONNECTED\n" in data and b"ERROR\n" in data
    assert took < 5.0


# ---- a reader that stopped ----

def stomp_send(sock, dest, body, receipt=None):
    head = "SEND\ndestination:%s\ncontent-length:%d\n" % (dest, len(body))
    if receipt:
        head += "receipt:%s\n" % receipt
    sock.sendall(head.encode() + b"\n" + body + b"\0")


@pytest.mark.parametrize("kind", ["stomps", "auto"])
def test_stalled_tls_subscriber_is_bounded(start_broker, pki, kind):
    """A TLS subscriber that stops reading gets a bounded part of a topic
    stream (out_high_water), on a TLS listener and on an auto listener's
    TLS alike: encrypted bytes do not pile up out of the broker's sight."""
    count, size = 3000, 4096
    b = start_broker(config_text=tls_conf(pki, ["127.0.0.1:0/" + kind, "127.0.0.1:0/stomp"],
                                          "out_high_water 32768\nout_hard_limit 1048576\n"))
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(WAIT)
    raw.connect((HOST, b.port(kind)))
    slow = client_ctx(pki).wrap_socket(raw, server_hostname=HOST)
    slow.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0"
                 b"SUBSCRIBE\nid:1\ndestination:/topic/slow\nreceipt:s\n\n\0")
    assert b"RECEIPT" in recv_until(slow, b"receipt-id:s")
    pub = socket.create_connection((HOST, b.port("stomp")), timeout=WAIT)
    pub.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
    assert recv_until(pub, b"\0").startswith(b"CONNECTED")
    for i in range(count):   # receipts pace the publisher, not the subscriber
        stomp_send(pub, "/topic/slow", b"m" * size, receipt="p%d" % i if i % 100 == 99 else None)
        if i % 100 == 99:
            assert b"receipt-id:p%d" % i in recv_until(pub, b"receipt-id:p%d" % i)
    # Reading again: the backlog first, then the marker (re-sent, since a
    # message published while it still counts as slow is dropped).
    buf = b""
    deadline = time.monotonic() + WAIT
    while b"END" not in buf:
        assert time.monotonic() < deadline, "the stalled subscriber is no longer served"
        stomp_send(pub, "/topic/slow", b"END")
        slow.settimeout(0.2)
        try:
            while b"END" not in buf:
                chunk = slow.recv(65536)
                assert chunk, "the stalled subscriber lost its connection"
                buf += chunk
        except (socket.timeout, ssl.SSLWantReadError):
            pass
    got = buf[:buf.find(b"END")].count(b"MESSAGE\n")
    assert 0 < got < count // 2, "the stalled subscriber got %d of %d" % (got, count)
    slow.close()
    pub.close()
