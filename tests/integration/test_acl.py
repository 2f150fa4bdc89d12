"""ACL integration tests (issue 11, "Who may do what") with real clients:
Debian's paho-mqtt and stomp.py, logging in with users_file accounts, against
a broker started with an acl_file. MQTT SUBSCRIBE refused with SUBACK 0x80,
a refused PUBLISH dropped but acknowledged, wildcard deliveries filtered per
topic; STOMP SUBSCRIBE / SEND refused with ERROR, queue rules; both ways
across the protocols; the anonymous section; %u / %c patterns keeping two
devices apart; SIGHUP changing the outcome, and a broken file on SIGHUP
keeping the rules in force.

That a message was NOT delivered is shown by order, never by waiting: the
refused message is published first and a permitted one after it, on the
same connection, so the permitted one arriving first proves the other was
dropped.

Run: WSB_BUILD_DIR=<build dir> /usr/bin/python3 -m pytest tests/integration/test_acl.py
"""

import queue
import signal
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest
import stomp

from conftest import BINARIES

WAIT = 5.0

USERS = """\
alice alicepw
bob bobpw
admin adminpw
dev devpw
"""

ACL = """\
# anonymous clients
topic read public/#

user alice
topic readwrite a/#
topic deny a/secret
topic write cmd/#
queue read jobs.*
queue write jobs.in

user bob
topic read a/#
topic read b/#

user admin
topic readwrite #
queue readwrite #

# everyone: a device owns its own subtree, a user its inbox
pattern readwrite devices/%c/#
pattern read inbox/%u
"""


@pytest.fixture
def acl_broker(start_broker, tmp_path):
    users = tmp_path / "users"
    users.write_text(USERS)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = start_broker("wsbroker", args=["--set", "users_file=%s" % users,
                                       "--set", "acl_file=%s" % acl])
    b.acl_path = acl
    return b


class Mqtt:
    """A paho client logged in as user (None: anonymous), with an inbox."""

    def __init__(self, broker, user=None, client_id=""):
        self.c = mqtt.Client(client_id=client_id, clean_session=True)
        if user:
            self.c.username_pw_set(user, user + "pw")
        self.inbox = queue.Queue()
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.rc = None
        self.granted = {}
        self.suback = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda c, u, rc: self.lost.set()
        self.c.on_message = lambda c, u, m: self.inbox.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", broker.ports["mqtt"], 60)
        self.c.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        assert self.rc == 0, "CONNACK %s" % self.rc

    def _on_connect(self, c, userdata, flags, rc):
        self.rc = rc
        self.connected.set()

    def _on_subscribe(self, c, userdata, mid, granted):
        with self.suback:
            self.granted[mid] = granted
            self.suback.notify_all()

    def subscribe(self, *filters, qos=0):
        """Subscribe to the filters in one SUBSCRIBE; the SUBACK's codes."""
        rc, mid = self.c.subscribe([(f, qos) for f in filters])
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.suback:
            assert self.suback.wait_for(lambda: mid in self.granted, WAIT), "no SUBACK"
            return list(self.granted[mid])

    def publish(self, topic, payload, qos=1):
        """Publish and, for QoS 1/2, wait for the broker's acknowledgement."""
        info = self.c.publish(topic, payload, qos)
        info.wait_for_publish(WAIT)
        assert info.is_published(), "not acknowledged: %s" % topic

    def get(self):
        try:
            m = self.inbox.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("no message within %s s" % WAIT)
        return m.topic, m.payload

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Stomp(stomp.ConnectionListener):
    """A stomp.py 1.2 connection logged in as user (None: anonymous)."""

    def __init__(self, broker, user=None, client_id=None):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.conn = stomp.Connection12([("127.0.0.1", broker.ports["stomp"])],
                                       heartbeats=(0, 0), auto_decode=False)
        self.conn.set_listener("", self)
        headers = {"client-id": client_id} if client_id else {}
        if user:
            self.conn.connect(user, user + "pw", wait=True, headers=headers)
        else:
            self.conn.connect(wait=True, headers=headers)

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def receipt(self, rid):
        try:
            assert self.receipts.get(timeout=WAIT) == rid
        except queue.Empty:
            pytest.fail("no RECEIPT %s" % rid)

    def subscribe(self, dest, sid):
        self.conn.subscribe(dest, id=sid, ack="auto", receipt="sub-" + sid)
        self.receipt("sub-" + sid)

    def send(self, dest, body):
        self.conn.send(dest, body, receipt="send-" + body)
        self.receipt("send-" + body)

    def error(self):
        try:
            f = self.errors.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("no ERROR frame")
        return f.headers.get("message"), f.body

    def get(self):
        try:
            f = self.messages.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("no MESSAGE within %s s" % WAIT)
        return f.headers["destination"], f.body

    def close(self):
        if self.conn.is_connected():
            self.conn.disconnect()


@pytest.fixture
def clients(acl_broker):
    made = []

    def make(kind, *a, **kw):
        c = (Mqtt if kind == "mqtt" else Stomp)(acl_broker, *a, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


# ------------------------------------------------------------------ MQTT

def test_mqtt_subscribe_allowed_and_denied(acl_broker, clients):
    alice = clients("mqtt", "alice")
    # a/x readable, c/x nothing, a/secret wholly denied, cmd/# write only,
    # '#' matches some readable topics (a/...) so it is allowed
    assert alice.subscribe("a/x", "c/x", "a/secret", "cmd/#", "#") == [0, 128, 128, 128, 0]
    acl_broker.wait_log("subscription to 'c/x' refused: the ACL allows reading none of it")
    # the refusals cost nothing else: the granted ones work (one copy for
    # a/x and # together: MQTT delivers once per client)
    alice.publish("a/x", b"mine")
    assert alice.get() == ("a/x", b"mine")
    alice.publish("a/y", b"via #")
    assert alice.get() == ("a/y", b"via #")


def test_mqtt_publish_denied_is_dropped_and_acknowledged(acl_broker, clients):
    bob = clients("mqtt", "bob")
    alice = clients("mqtt", "alice", client_id="alice-1")
    assert bob.subscribe("a/#", "b/#") == [0, 0]
    # QoS 1 and 2 refusals are still acknowledged (publish() waits for it)
    alice.publish("a/secret", b"denied", qos=1)
    alice.publish("b/x", b"no write on b", qos=2)
    alice.publish("a/ok", b"allowed", qos=1)
    assert bob.get() == ("a/ok", b"allowed")
    assert not alice.lost.is_set() and alice.c.is_connected()
    acl_broker.wait_log("mqtt: publish to 'a/secret' dropped: the ACL does not allow it")
    log = acl_broker.log()
    line = next(ln for ln in log.splitlines() if "publish to 'b/x' dropped" in ln)
    assert "alice-1" in line and "127.0.0.1" in line


def test_mqtt_wildcard_delivery_filtered(clients):
    alice = clients("mqtt", "alice")
    admin = clients("mqtt", "admin")
    assert alice.subscribe("#") == [0]
    for topic in ("a/secret", "b/x", "public/y", "a/open"):
        admin.publish(topic, topic.encode())
    # of the four, alice may read only a/open
    assert alice.get() == ("a/open", b"a/open")
    admin.publish("a/last", b"last")
    assert alice.get() == ("a/last", b"last")


def test_retained_messages_are_filtered_too(clients):
    admin = clients("mqtt", "admin")
    admin.c.publish("a/secret", b"s", 1, retain=True).wait_for_publish(WAIT)
    admin.c.publish("a/r", b"r", 1, retain=True).wait_for_publish(WAIT)
    alice = clients("mqtt", "alice")
    assert alice.subscribe("a/#") == [0]
    assert alice.get() == ("a/r", b"r")
    admin.publish("a/after", b"after")
    assert alice.get() == ("a/after", b"after")


def test_anonymous_section(acl_broker, clients):
    anon = clients("mqtt")
    admin = clients("mqtt", "admin")
    assert anon.subscribe("public/#", "a/#", "#") == [0, 128, 0]
    anon.publish("public/x", b"read only")       # dropped: no write for anonymous
    admin.publish("a/x", b"not for anonymous")
    admin.publish("public/news", b"news")
    assert anon.get() == ("public/news", b"news")
    acl_broker.wait_log("publish to 'public/x' dropped")


def test_pattern_client_id_isolates_devices(clients):
    dev1 = clients("mqtt", "dev", client_id="dev1")
    dev2 = clients("mqtt", "dev", client_id="dev2")
    assert dev1.subscribe("devices/dev2/#") == [128]
    assert dev1.subscribe("devices/+/t") == [0]
    dev2.publish("devices/dev1/t", b"dev2 writing into dev1")   # dropped: not dev2's
    dev2.publish("devices/dev2/t", b"dev2's own")               # written, but not dev1's to read
    dev1.publish("devices/dev1/t", b"dev1's own")
    assert dev1.get() == ("devices/dev1/t", b"dev1's own")
    # a client id with a wildcard gets no pattern rules at all
    sneaky = clients("mqtt", "dev", client_id="+")
    assert sneaky.subscribe("devices/+/t", "devices/#") == [128, 128]


def test_pattern_login_inbox(clients):
    bob = clients("mqtt", "bob")
    admin = clients("mqtt", "admin")
    assert bob.subscribe("inbox/bob", "inbox/alice", "inbox/+") == [0, 128, 0]
    admin.publish("inbox/alice", b"for alice")
    admin.publish("inbox/bob", b"for bob")
    assert bob.get() == ("inbox/bob", b"for bob")


# ------------------------------------------------------------------ STOMP

def test_stomp_subscribe_denied_gets_error(clients):
    alice = clients("stomp", "alice")
    alice.subscribe("/topic/a.x", "ok")
    alice.conn.subscribe("/topic/c.x", id="no", ack="auto")
    msg, body = alice.error()
    assert msg == "access refused"
    assert b"/topic/c.x" in body


def test_stomp_send_denied_gets_error(clients):
    bob = clients("stomp", "bob")
    bob.subscribe("/topic/a.#", "all-a")
    alice = clients("stomp", "alice")
    alice.send("/topic/a.fine", "fine")
    assert bob.get() == ("/topic/a.fine", b"fine")
    alice.conn.send("/topic/a.secret", "nope")
    msg, body = alice.error()
    assert msg == "access refused"
    assert b"sending to '/topic/a.secret'" in body
    # bob still works and never saw the refused SEND
    other = clients("stomp", "alice")
    other.send("/topic/a.after", "after")
    assert bob.get() == ("/topic/a.after", b"after")


def test_stomp_wildcard_delivery_filtered(clients):
    alice = clients("stomp", "alice")
    alice.subscribe("/topic/#", "all")
    admin = clients("stomp", "admin")
    for name in ("a.secret", "b.x", "a.open"):
        admin.send("/topic/" + name, name)
    assert alice.get() == ("/topic/a.open", b"a.open")


def test_stomp_queue_rules(clients):
    alice = clients("stomp", "alice")
    alice.send("/queue/jobs.in", "job1")
    alice.subscribe("/queue/jobs.in", "q")
    assert alice.get() == ("/queue/jobs.in", b"job1")
    alice.conn.send("/queue/jobs.other", "x")
    assert alice.error()[0] == "access refused"
    alice2 = clients("stomp", "alice")
    alice2.conn.subscribe("/queue/orders", id="q2", ack="auto")
    msg, body = alice2.error()
    assert msg == "access refused" and b"/queue/orders" in body


# ------------------------------------------------------------------ across

def test_mqtt_publish_stomp_subscriber_subject_to_acl(clients):
    alice = clients("stomp", "alice")
    alice.subscribe("/topic/a.#", "a")
    admin = clients("mqtt", "admin")
    admin.publish("a/secret", b"hidden")
    admin.publish("a/pub", b"shown")
    assert alice.get() == ("/topic/a.pub", b"shown")


def test_stomp_send_mqtt_subscriber_subject_to_acl(clients):
    anon = clients("mqtt")
    assert anon.subscribe("#") == [0]
    admin = clients("stomp", "admin")
    admin.send("/topic/b.y", "b")
    admin.send("/topic/public.x", "public")
    assert anon.get() == ("public/x", b"public")
    # and a STOMP client is held to its write rules towards MQTT readers
    bob = clients("mqtt", "bob")
    assert bob.subscribe("a/#") == [0]
    alice = clients("stomp", "alice")
    alice.conn.send("/topic/a.secret", "no")
    assert alice.error()[0] == "access refused"
    alice2 = clients("stomp", "alice")
    alice2.send("/topic/a.yes", "yes")
    assert bob.get() == ("a/yes", b"yes")


def test_stomp_client_id_pattern(clients):
    dev1 = clients("stomp", "dev", client_id="dev1")
    dev1.subscribe("/topic/devices.dev1.#", "mine")
    dev1.conn.subscribe("/topic/devices.dev2.#", id="theirs", ack="auto")
    assert dev1.error()[0] == "access refused"


# ------------------------------------------------------------------ reload

def _reload(broker, text, expect):
    start = len(broker.log())
    broker.acl_path.write_text(text)
    broker.send_signal(signal.SIGHUP)
    broker.wait_log(expect, start=start)


def test_sighup_changes_the_outcome(acl_broker, clients):
    alice = clients("mqtt", "alice")
    admin = clients("mqtt", "admin")
    assert alice.subscribe("#") == [0]
    assert alice.subscribe("a/x") == [0]   # wholly readable: no per-message check
    assert alice.subscribe("z/1") == [128]
    admin.publish("z/2", b"before")
    admin.publish("a/x", b"marker")
    assert alice.get() == ("a/x", b"marker")   # z/2 was filtered
    _reload(acl_broker, ACL.replace("topic deny a/secret", "topic read z/#"),
            "SIGHUP: configuration reloaded")
    # the existing '#' subscription now gets z/..., and a/secret too
    admin.publish("z/3", b"after")
    assert alice.get() == ("z/3", b"after")
    admin.publish("a/secret", b"no longer denied")
    assert alice.get() == ("a/secret", b"no longer denied")
    assert alice.subscribe("z/1") == [0]
    # and taken away again: the subscriptions stay, their messages do not
    # come (a/x's "wholly readable" verdict belonged to the old rules)
    _reload(acl_broker, ACL.replace("topic readwrite a/#", "topic readwrite a/open/#"),
            "SIGHUP: configuration reloaded")
    admin.publish("a/x", b"now hidden")
    admin.publish("a/open/1", b"still open")
    assert alice.get() == ("a/open/1", b"still open")


def test_sighup_with_broken_file_keeps_old_rules(acl_broker, clients):
    alice = clients("mqtt", "alice")
    _reload(acl_broker, ACL + "topic read ok\nfrobnicate everything\n",
            "SIGHUP: configuration not reloaded, the ACLs in force stay: %s:%d: "
            "unknown keyword 'frobnicate'" % (acl_broker.acl_path, ACL.count("\n") + 2))
    # the old rules still hold: c/x refused, a/x allowed, a/secret denied
    assert alice.subscribe("c/x", "a/x", "a/secret") == [128, 0, 128]
    assert acl_broker.running()


def test_broken_file_stops_start_up(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read a/#\nuser\n")
    r = subprocess.run([str(BINARIES["wsbroker"]), "--listen", "127.0.0.1:0/mqtt",
                        "--db", ":memory:", "--set", "acl_file=%s" % acl],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "%s:2: user without a name" % acl in r.stderr
    r = subprocess.run([str(BINARIES["wsbroker"]), "--listen", "127.0.0.1:0/mqtt",
                        "--db", ":memory:", "--set", "acl_file=%s" % (tmp_path / "none")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "No such file" in r.stderr


def test_no_acl_file_allows_everything(start_broker):
    b = start_broker("wsbroker")
    c = Mqtt(b)
    try:
        assert c.subscribe("a/secret", "#") == [0, 0]
        c.publish("a/secret", b"x")
        assert c.get()[0] == "a/secret"
    finally:
        c.close()
