"""Who may connect (issue 11): `wsbroker passwd` and PBKDF2 users_file
entries, the plain format's warning, allow_anonymous on and beyond loopback,
Origin patterns and the Origin log line, and the per-address delay of failed
logins.

Logins go through Debian's paho-mqtt and stomp.py where a library can say
what a user would see; the backoff timings use raw sockets, so that the time
measured is the broker's (no client reconnect logic or thread start-up in it).

Run with /usr/bin/python3 -m pytest tests/integration/test_auth.py.
"""

import os
import re
import socket
import stat
import struct
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import stomp

from conftest import BINARIES
from wsraw import Client

WAIT = 5.0
ENTRY = re.compile(r"^([^:\s]+):\$pbkdf2-sha512\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


# ---------------------------------------------------------------- helpers

def passwd(path, user, password, *extra):
    """Run `wsbroker passwd [extra] FILE USER` with the password on stdin."""
    return subprocess.run([str(BINARIES["wsbroker"]), "passwd", *extra, str(path), user],
                          input=password + "\n", capture_output=True, text=True, timeout=30)


def entries(path):
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def mqtt_login(port, user, password, transport="tcp"):
    """CONNACK return code of a paho login (0 accepted)."""
    c = mqtt.Client(client_id="", clean_session=True, protocol=mqtt.MQTTv311,
                    transport="websockets" if transport == "ws" else "tcp")
    if transport == "ws":
        c.ws_set_options(path="/mqtt")
    if user is not None:
        c.username_pw_set(user, password)
    got = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, rc):
        got["rc"] = rc
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    try:
        assert done.wait(WAIT), "no CONNACK"
    finally:
        c.disconnect()
        c.loop_stop()
    return got["rc"]


class ErrorListener(stomp.ConnectionListener):
    def __init__(self):
        self.errors = []
        self.got = threading.Event()

    def on_error(self, frame):
        self.errors.append(frame)
        self.got.set()


def stomp_login(port, user, password):
    """None when CONNECTED, else the ERROR frame's message header."""
    conn = stomp.Connection12([("127.0.0.1", port)], reconnect_attempts_max=1)
    lis = ErrorListener()
    conn.set_listener("e", lis)
    try:
        conn.connect(user, password, wait=True)
    except stomp.exception.ConnectFailedException:
        assert lis.got.wait(WAIT)
        return lis.errors[0].headers.get("message")
    assert conn.is_connected()
    conn.disconnect()
    return None


def mqtt_connect_packet(client_id, user=None, password=None):
    def s(b):
        return struct.pack("!H", len(b)) + b
    flags = 0x02
    payload = s(client_id.encode())
    if user is not None:
        flags |= 0x80
        payload += s(user.encode())
    if password is not None:
        flags |= 0x40
        payload += s(password.encode())
    var = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    body = var + payload
    return bytes([0x10, len(body)]) + body


def timed_mqtt(port, user, password, client_id="t", then=b""):
    """(seconds until the CONNACK, its return code). then: bytes sent right
    after the CONNECT, which a held refusal must ignore."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sk:
        t0 = time.monotonic()
        sk.sendall(mqtt_connect_packet(client_id, user, password) + then)
        data = b""
        while len(data) < 4:
            chunk = sk.recv(4 - len(data))
            assert chunk, "closed without a CONNACK"
            data += chunk
        elapsed = time.monotonic() - t0
        assert data[0] == 0x20, data
        return elapsed, data[3]


def timed_stomp(port, user, password):
    """(seconds until the broker's first frame, its command)."""
    with Client(port) as c:
        t0 = time.monotonic()
        c.send(("CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\npasscode:%s\n\n\0"
                % (user, password)).encode())
        frame = c.recv_until(b"\0")
        elapsed = time.monotonic() - t0
        return elapsed, frame.split(b"\n", 1)[0].decode()


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users"
    assert passwd(path, "alice", "alice-pw").returncode == 0
    assert passwd(path, "bob", "bob pw with spaces").returncode == 0
    return path


# ---------------------------------------------------------------- passwd

def test_passwd_round_trip(tmp_path, start_broker):
    path = tmp_path / "users"
    r = passwd(path, "alice", "first-pw")
    assert r.returncode == 0, r.stderr
    assert "added alice" in r.stdout
    assert "first-pw" not in r.stdout + r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (line,) = entries(path)
    m = ENTRY.match(line)
    assert m, line
    assert m.group(1) == "alice" and int(m.group(2)) >= 1000
    assert "first-pw" not in path.read_text()

    assert passwd(path, "bob", "bob-pw").returncode == 0
    bob_line = entries(path)[1]
    # Updating alice replaces her entry only; bob's stays byte for byte.
    r = passwd(path, "alice", "second-pw")
    assert r.returncode == 0 and "updated alice" in r.stdout
    lines = entries(path)
    assert len(lines) == 2 and lines[1] == bob_line
    assert lines[0].startswith("alice:$pbkdf2-sha512$") and lines[0] != line
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["users"]   # no temporary left

    b = start_broker(args=["--set", "users_file=%s" % path, "--set", "login_fail_delay_ms=0"])
    assert mqtt_login(b.ports["mqtt"], "alice", "second-pw") == 0
    assert mqtt_login(b.ports["ws"], "alice", "second-pw", transport="ws") == 0
    assert mqtt_login(b.ports["mqtt"], "bob", "bob-pw") == 0
    assert stomp_login(b.ports["stomp"], "alice", "second-pw") is None
    # The old password, a wrong one, an unknown user: refused.
    assert mqtt_login(b.ports["mqtt"], "alice", "first-pw") == 5
    assert mqtt_login(b.ports["mqtt"], "alice", "second-pW") == 5
    assert mqtt_login(b.ports["mqtt"], "mallory", "second-pw") == 5
    assert stomp_login(b.ports["stomp"], "alice", "first-pw") == "access refused"
    # Every listener is on loopback: allow_anonymous is true unless set.
    assert mqtt_login(b.ports["mqtt"], None, None) == 0
    assert "second-pw" not in b.log()


def test_passwd_takes_the_password_from_stdin_only(tmp_path):
    path = tmp_path / "users"
    exe = str(BINARIES["wsbroker"])
    # While it waits for the password, its argv (what ps shows) holds none.
    p = subprocess.Popen([exe, "passwd", str(path), "carol"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while True:   # until the exec has happened
            argv = open("/proc/%d/cmdline" % p.pid, "rb").read().split(b"\0")[:-1]
            if argv[:1] == [exe.encode()] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert argv == [exe.encode(), b"passwd", str(path).encode(), b"carol"]
        out, err = p.communicate(b"carol-secret\n", timeout=30)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0, err
    assert ENTRY.match(entries(path)[0])
    # There is no place on the command line for a password.
    r = subprocess.run([exe, "passwd", str(path), "carol", "carol-secret"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: wsbroker passwd" in r.stderr
    # An empty password, and a name the file cannot carry, are refused.
    assert passwd(path, "dave", "").returncode == 1
    assert passwd(path, "da:ve", "x").returncode == 2
    assert len(entries(path)) == 1


def test_plain_entries_still_work_and_warn_once_each(tmp_path, start_broker):
    path = tmp_path / "users"
    path.write_text("# old style\ncarol plain-pw\n")
    assert passwd(path, "alice", "alice-pw").returncode == 0
    assert entries(path)[0] == "carol plain-pw"      # the tool keeps other lines as they are
    b = start_broker(args=["--set", "users_file=%s" % path, "--set", "login_fail_delay_ms=0"])
    warnings = [l for l in b.log().splitlines() if "has a plain-text password" in l]
    assert len(warnings) == 1, b.log()
    assert " warn " in warnings[0] and "'carol'" in warnings[0]
    assert "plain-pw" not in b.log()
    assert mqtt_login(b.ports["mqtt"], "carol", "plain-pw") == 0
    assert stomp_login(b.ports["stomp"], "carol", "plain-pw") is None
    assert mqtt_login(b.ports["mqtt"], "carol", "plain-pX") == 5
    assert mqtt_login(b.ports["mqtt"], "alice", "alice-pw") == 0


def test_malformed_users_file_stops_start_up(tmp_path, start_broker):
    path = tmp_path / "users"
    path.write_text("alice:$pbkdf2-sha512$12$AAAA$BBBB\n")
    b = start_broker(args=["--set", "users_file=%s" % path], wait=False, check_exit=False)
    assert b.wait() == 2
    assert "%s:1: iteration count out of range" % path in b.log()


# ---------------------------------------------------------------- anonymous

def test_beyond_loopback_without_users_file_refuses_to_start(start_broker):
    b = start_broker(args=["--listen", "0.0.0.0:0/mqtt"], wait=False, check_exit=False)
    assert b.wait() == 2
    log = b.log()
    assert "listener 0.0.0.0:0 is not on loopback and no users_file is set" in log
    assert "allow_anonymous true" in log
    # --check-config says the same, before any socket.
    r = subprocess.run([str(BINARIES["wsbroker"]), "--listen", "[::]:0/mqtt", "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "is not on loopback" in r.stderr


def test_beyond_loopback_with_explicit_allow_anonymous_starts(start_broker):
    b = start_broker(config_text="listener 0.0.0.0:0/mqtt\nallow_anonymous true\n")
    assert mqtt_login(b.ports["mqtt"], None, None) == 0
    # The explicit default survives --print-config, so its output starts too.
    r = subprocess.run([str(BINARIES["wsbroker"]), "-c", str(b.config_path), "--print-config"],
                       capture_output=True, text=True, timeout=30)
    assert "\nallow_anonymous true\n" in r.stdout


def test_beyond_loopback_with_users_file_refuses_anonymous(users, start_broker):
    b = start_broker(args=["--listen", "0.0.0.0:0/mqtt", "--set", "users_file=%s" % users,
                           "--set", "login_fail_delay_ms=0"])
    assert mqtt_login(b.ports["mqtt"], None, None) == 5
    assert mqtt_login(b.ports["mqtt"], "alice", "alice-pw") == 0


def test_loopback_only_allows_anonymous_by_default(broker):
    assert mqtt_login(broker.ports["mqtt"], None, None) == 0
    assert stomp_login(broker.ports["stomp"], None, None) is None


# ---------------------------------------------------------------- Origin

def test_origin_pattern_and_log(start_broker):
    b = start_broker(args=["--set", "origin=https://*.example.com",
                           "--set", "origin=http://exact.example.org"])
    for origin in ("https://a.example.com", "https://a.b.example.com",
                   "http://exact.example.org"):
        with Client(b.ports["ws"]) as c:
            c.handshake("/mqtt", protocols="mqtt", headers={"Origin": origin})
        line = b.wait_log("Origin %s" % origin)
        # at info level, with the peer
        text = b.log()[:line].splitlines()[-1]
        assert " info " in text and "peer=127.0.0.1:" in text, text
    for origin in ("https://example.com", "http://a.example.com", "https://a.example.com:8443",
                   "https://evil-example.com", "https://a.example.com.evil.org"):
        with Client(b.ports["ws"]) as c:
            c.handshake("/mqtt", protocols="mqtt", headers={"Origin": origin}, expect=403)
        b.wait_log("origin '%s' is not allowed" % origin)
    # No Origin (not a browser): allowed, and logged as none.
    with Client(b.ports["ws"]) as c:
        c.handshake("/stomp", protocols="v12.stomp")
    b.wait_log("WebSocket v12.stomp on /stomp (stomp), Origin -")


# ---------------------------------------------------------------- backoff

def test_failed_logins_are_delayed_more_each_time(users, start_broker):
    b = start_broker(args=["--set", "users_file=%s" % users, "--set", "login_fail_delay_ms=200",
                           "--set", "login_fail_delay_max_ms=800"])
    port = b.ports["mqtt"]
    times = []
    for i in range(5):
        # Bytes after the CONNECT are ignored while the refusal is held.
        t, rc = timed_mqtt(port, "alice", "wrong", then=b"\xc0\x00" * 3)
        assert rc == 5
        times.append(t)
    expected = [0.2, 0.4, 0.8, 0.8, 0.8]
    for t, e in zip(times, expected):
        assert e * 0.9 <= t < e + 0.5, (times, expected)
    assert times[0] < times[1] < times[2]
    log = b.log()
    assert "auth: login 'alice' refused: wrong password (failure 5 in a row from 127.0.0.1;" in log
    assert len(re.findall(r"auth: login 'alice' refused", log)) == 5

    # STOMP from the same address shares the count: still at the maximum.
    t, cmd = timed_stomp(b.ports["stomp"], "alice", "wrong")
    assert cmd == "ERROR" and 0.72 <= t < 1.3, t


def test_correct_login_is_never_delayed_and_resets(users, start_broker):
    b = start_broker(args=["--set", "users_file=%s" % users, "--set", "login_fail_delay_ms=300",
                           "--set", "login_fail_delay_max_ms=1200"])
    port = b.ports["mqtt"]
    for _ in range(3):
        timed_mqtt(port, "alice", "wrong")              # 0.3, 0.6, 1.2 s
    # A refusal is held for 1.2 s; meanwhile a correct login from the same
    # address (another client behind the same NAT) is answered at once.
    held = {}
    th = threading.Thread(target=lambda: held.update(r=timed_mqtt(port, "alice", "wrong", "h")))
    th.start()
    b.wait_log("failure 4 in a row")
    t, rc = timed_mqtt(port, "bob", "bob pw with spaces", "ok")
    assert rc == 0 and t < 0.3, t
    th.join(WAIT)
    assert held["r"][1] == 5 and held["r"][0] >= 1.08, held
    # bob's success forgot the address: the next failure starts again.
    t, rc = timed_mqtt(port, "alice", "wrong")
    assert rc == 5 and 0.27 <= t < 0.6, t
    t, cmd = timed_stomp(b.ports["stomp"], "alice", "alice-pw")
    assert cmd == "CONNECTED" and t < 0.3, t
    t, cmd = timed_stomp(b.ports["stomp"], "alice", "wrong")
    assert cmd == "ERROR" and 0.27 <= t < 0.6, t


def test_no_delay_when_turned_off(users, start_broker):
    b = start_broker(args=["--set", "users_file=%s" % users, "--set", "login_fail_delay_ms=0"])
    for _ in range(4):
        t, rc = timed_mqtt(b.ports["mqtt"], "alice", "wrong")
        assert rc == 5 and t < 0.3


def test_passwd_on_a_terminal_asks_twice_without_echo(tmp_path):
    import pty
    path = tmp_path / "users"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(BINARIES["wsbroker"]), ["wsbroker", "passwd", str(path), "erin"])
    seen = b""

    def read_until(marker):
        nonlocal seen
        deadline = time.monotonic() + WAIT
        while marker not in seen:
            assert time.monotonic() < deadline, seen
            try:
                chunk = os.read(fd, 1024)
            except OSError:   # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk

    read_until(b"Password: ")
    os.write(fd, b"tty-secret\n")
    read_until(b"Retype password: ")
    os.write(fd, b"tty-secret\n")
    read_until(b"added erin")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WEXITSTATUS(status) == 0, seen
    assert b"tty-secret" not in seen          # echo was off
    assert ENTRY.match(entries(path)[0]).group(1) == "erin"


def test_sighup_reloads_accounts_and_keeps_old_ones_on_error(users, start_broker):
    import signal
    b = start_broker(args=["--set", "users_file=%s" % users, "--set", "login_fail_delay_ms=0"])
    assert mqtt_login(b.ports["mqtt"], "frank", "frank-pw") == 5
    assert passwd(users, "frank", "frank-pw").returncode == 0
    at = len(b.log())
    b.send_signal(signal.SIGHUP)
    b.wait_log("SIGHUP: configuration reloaded", start=at)
    assert mqtt_login(b.ports["mqtt"], "frank", "frank-pw") == 0
    # A broken file is refused and the accounts loaded before stay.
    with open(users, "a") as f:
        f.write("broken:$pbkdf2-sha512$x$y$z\n")
    at = len(b.log())
    b.send_signal(signal.SIGHUP)
    b.wait_log("SIGHUP: users not reloaded: %s:4: iteration count is not a number" % users,
               start=at)
    assert mqtt_login(b.ports["mqtt"], "frank", "frank-pw") == 0
