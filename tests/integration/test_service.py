"""wsbroker as a service: what an operator installing and supervising it
checks.

- sd_notify with a fake NOTIFY_SOCKET (systemd is not PID 1 on CI machines):
  READY=1 comes only after the port file lists every listener and they
  accept (the test holds READY=1 back by filling the socket's queue); SIGHUP
  gives RELOADING=1 then READY=1; SIGTERM gives STOPPING=1 and exit 0. A
  build without libsystemd fails here, it is not skipped.
- `make install DESTDIR=...` puts exactly the contract's files in place with
  their modes; the man pages render without warnings; the installed sample
  config passes --check-config.
- The installed unit passes `systemd-analyze verify` and `systemd-analyze
  security --offline` scores at most EXPOSURE_MAX.
- --check-config: valid and invalid files, no socket and no database opened.
- `make distcheck` from a scratch configure of this source tree.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time

import pytest

from conftest import BUILD, REPO, _sanitizer_env

WSBROKER = BUILD / "broker" / "wsbroker"
NOTIFY_TIMEOUT = 10.0
# systemd-analyze security: 0 is the best, 10 the worst; up to 4.0 is "OK".
# The unit scores 1.4 today (what is left: it is a network service that
# binds ports below 1024 and runs in the host's network and user namespaces).
EXPOSURE_MAX = 2.0


def run(argv, timeout=60, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, **kw)


def make_vars(*names):
    """The build's installation directories, expanded by make itself."""
    script = "wsb-print-vars:\n" + "".join(
        "\t@echo '%s=$(%s)'\n" % (n, n) for n in names)
    out = run(["make", "-s", "--no-print-directory", "-C", BUILD, "-f", "Makefile",
               "-f", "-", "wsb-print-vars"], input=script)
    assert out.returncode == 0, out.stderr
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert set(values) == set(names), out.stdout
    return values


# ---- sd_notify ----

class Notifications:
    """The fake NOTIFY_SOCKET: one datagram per sd_notify call.

    block() fills its queue first. sd_notify sends on a blocking socket, so
    the broker then stops inside its first notification until the test
    drains the queue: whatever the broker had done before READY=1 is
    visible, whatever it would do after is not. A READY=1 sent before the
    port file is written leaves no port file to find."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.queued = 0

    def block(self):
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        try:
            while True:
                filler.sendto(b"FILLER=1", self.path)
                self.queued += 1
        except BlockingIOError:
            pass
        finally:
            filler.close()
        assert self.queued > 0

    def next(self, proc, log_path, what):
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                if proc.poll() is not None:
                    pytest.fail("broker exited with %d while the test waited for %s:\n%s"
                                % (proc.returncode, what, log_path.read_text()))
                continue
            if data == b"FILLER=1":
                self.queued -= 1
                continue
            return dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        pytest.fail("no %s datagram within %.0f s:\n%s" % (what, NOTIFY_TIMEOUT, log_path.read_text()))

    def close(self):
        self.sock.close()


def wait_port_file(port_file, count, proc, log_path):
    """The port file with count lines, while the broker's first notification
    cannot be delivered."""
    deadline = time.monotonic() + NOTIFY_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        if port_file.exists() and len(port_file.read_text().splitlines()) == count:
            return port_file.read_text().splitlines()
        time.sleep(0.02)
    pytest.fail("no complete port file while READY=1 was held back: the broker sent "
                "READY=1 before binding its listeners and writing the port file:\n%s"
                % log_path.read_text())


def test_sd_notify_ready_reload_stop(tmp_path):
    version = run([WSBROKER, "--version"])
    assert "sd_notify: yes" in version.stdout, (
        "this build cannot notify systemd (configure found no libsystemd; "
        "scripts/install-deps installs libsystemd-dev): %s" % version.stdout)

    notify = Notifications(tmp_path / "notify.sock")
    notify.block()
    port_file = tmp_path / "ports"
    db = tmp_path / "wsbroker.db"
    log_path = tmp_path / "broker.log"
    env = _sanitizer_env()
    env["NOTIFY_SOCKET"] = notify.path
    kinds = ["auto", "ws", "mqtt", "stomp"]
    argv = [str(WSBROKER), "--db", str(db), "--port-file", str(port_file)]
    for kind in kinds:
        argv += ["--listen", "127.0.0.1:0/" + kind]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=str(tmp_path), env=env)
    try:
        # Before READY=1 is read: the port file lists every listener, they
        # accept, and the database is open.
        lines = wait_port_file(port_file, len(kinds), proc, log_path)
        assert [line.split()[0] for line in lines] == kinds, lines
        for line in lines:
            host, _, port = line.split()[1].rpartition(":")
            socket.create_connection((host, int(port)), timeout=5).close()
        assert db.exists(), "port file written before the database was opened"

        first = notify.next(proc, log_path, "READY=1")
        assert first.get("READY") == "1", "first notification is not READY=1: %r" % first
        assert first.get("MAINPID") == str(proc.pid), first

        proc.send_signal(signal.SIGHUP)
        assert notify.next(proc, log_path, "RELOADING=1").get("RELOADING") == "1"
        assert notify.next(proc, log_path, "READY=1 after the reload").get("READY") == "1"

        proc.send_signal(signal.SIGTERM)
        assert notify.next(proc, log_path, "STOPPING=1").get("STOPPING") == "1"
        assert proc.wait(timeout=15) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


def test_without_notify_socket_nothing_changes(tmp_path):
    """Outside systemd the broker starts and stops as before."""
    port_file = tmp_path / "ports"
    env = _sanitizer_env()
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([str(WSBROKER), "--db", ":memory:", "--listen", "127.0.0.1:0",
                             "--port-file", str(port_file)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while not port_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[0].decode()
        assert proc.returncode == 0, out
        assert "sd_notify" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- --check-config ----

def test_check_config_valid_prints_effective_settings(tmp_path):
    conf = tmp_path / "wsbroker.conf"
    conf.write_text("# ours\nws_max_message 4M\norigin https://app.example.com\nlog_level warn\n")
    # A port that is taken, and a database path: --check-config must touch neither.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    db = tmp_path / "never.db"
    try:
        out = run([WSBROKER, "--check-config", "-c", conf, "--listen", "127.0.0.1:%d/mqtt" % port,
                   "--db", db, "--set", "sync=normal"], cwd=tmp_path, env=_sanitizer_env())
    finally:
        taken.close()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for active in ["ws_max_message 4MiB", "origin https://app.example.com", "log_level warn",
                   "listener 127.0.0.1:%d/mqtt" % port, "db %s" % db, "sync normal"]:
        assert active in lines, "%r not active in:\n%s" % (active, out.stdout)
    for commented in ["# mqtt_max_inflight 20", "# allow_anonymous true", "# http_max_header 8KiB"]:
        assert commented in lines, "%r not there in:\n%s" % (commented, out.stdout)
    assert not db.exists() and not list(tmp_path.glob("*.db*")), "--check-config opened the database"

    # what it printed is itself a valid file with the same settings
    again = tmp_path / "again.conf"
    again.write_text(out.stdout)
    out2 = run([WSBROKER, "--check-config", "-c", again], env=_sanitizer_env())
    assert out2.returncode == 0, out2.stderr
    assert out2.stdout == out.stdout


@pytest.mark.parametrize("text,where", [
    ("log_level info\nmqtt_max_inflight 0\n", ":2: mqtt_max_inflight: 0 is out of range"),
    ("ws_max_message 1M\nno_such_key 5\n", ":2: unknown option 'no_such_key'"),
    ("users_file /nonexistent/wsbroker.users\n", "/nonexistent/wsbroker.users"),
    ("listener 127.0.0.1:99999\n", ":1: bad listener '127.0.0.1:99999'"),
])
def test_check_config_invalid_exits_2(tmp_path, text, where):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    out = run([WSBROKER, "--check-config", "-c", conf], env=_sanitizer_env())
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert where in out.stderr, out.stderr
    assert out.stdout == "", "an invalid file printed settings:\n" + out.stdout


def test_unwritable_value_exits_2_and_prints_nothing():
    """--set db= is accepted, but no config file line can say it."""
    out = run([WSBROKER, "--print-config", "--set", "db="], env=_sanitizer_env())
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "db: the value '' cannot be written" in out.stderr, out.stderr
    assert out.stdout == "", "half a config file on stdout:\n" + out.stdout


# ---- make install ----

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dirs = make_vars("prefix", "sbindir", "sysconfdir", "localstatedir", "man5dir", "man8dir",
                     "systemdsystemunitdir")
    dest = tmp_path_factory.mktemp("destdir")
    out = run(["nice", "make", "-C", BUILD, "install", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return dest, dirs


def under(dest, path):
    return dest / path.lstrip("/")


def test_install_puts_exactly_the_contract_files(installed):
    dest, d = installed
    want = {
        d["sbindir"] + "/wsbroker": 0o755,
        d["man8dir"] + "/wsbroker.8": 0o644,
        d["man5dir"] + "/wsbroker.conf.5": 0o644,
        d["sysconfdir"] + "/wsbroker/wsbroker.conf": 0o644,
        d["systemdsystemunitdir"] + "/wsbroker.service": 0o644,
    }
    got = {}
    for path in dest.rglob("*"):
        if path.is_file() or path.is_symlink():
            got["/" + str(path.relative_to(dest))] = path.stat().st_mode & 0o7777
    want = {re.sub("/+", "/", k): v for k, v in want.items()}
    assert got == {k: v for k, v in want.items()}, "installed %s, want %s" % (
        {k: oct(v) for k, v in got.items()}, {k: oct(v) for k, v in want.items()})


def test_installed_man_pages_render_without_warnings(installed):
    dest, d = installed
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    for page, title in [(d["man8dir"] + "/wsbroker.8", "WSBROKER(8)"),
                        (d["man5dir"] + "/wsbroker.conf.5", "WSBROKER.CONF(5)")]:
        path = under(dest, page)
        out = run(["man", "--warnings", "-l", path], env=env)
        assert out.returncode == 0, out.stderr
        assert out.stderr == "", "man warns about %s:\n%s" % (page, out.stderr)
        assert title in out.stdout.splitlines()[0]
        text = re.sub(r"\s+", " ", out.stdout.replace("\u2010 ", "").replace("\u2010", "-"))
        for key in ["listener", "ws_max_message", "mqtt_max_sessions", "allow_anonymous"]:
            assert key in text, "%s lacks %s" % (page, key)
        assert "Default: 127.0.0.1:8080/auto" in text
        groff = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
        assert groff.returncode == 0 and groff.stderr == "", groff.stderr
    eight = run(["man", "-l", under(dest, d["man8dir"] + "/wsbroker.8")], env=env).stdout
    for option in ["--check-config", "--print-config", "--print-man", "NOTIFY_SOCKET",
                   d["sysconfdir"] + "/wsbroker/wsbroker.conf"]:
        assert option in eight.replace("\u2010", "-"), "wsbroker(8) lacks " + option


def test_reinstall_keeps_an_edited_config_and_uninstall_leaves_it(tmp_path):
    """make install over an edited config keeps the edits; make uninstall
    removes the sample only while it is unedited."""
    d = make_vars("sysconfdir")
    dest = tmp_path / "destdir"
    conf = under(dest, d["sysconfdir"] + "/wsbroker/wsbroker.conf")
    out = run(["make", "-C", BUILD, "install", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    edited = conf.read_text() + "log_level debug\n"
    conf.write_text(edited)
    out = run(["make", "-C", BUILD, "install", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "keeping" in out.stdout
    assert conf.read_text() == edited
    out = run(["make", "-C", BUILD, "uninstall", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert conf.read_text() == edited, "uninstall removed an edited config"
    conf.unlink()
    out = run(["make", "-C", BUILD, "install", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0 and conf.exists()
    out = run(["make", "-C", BUILD, "uninstall", "DESTDIR=%s" % dest], timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not conf.exists(), "uninstall left the unedited sample behind"


def test_installed_sample_config_is_valid_and_points_at_state_dir(installed):
    dest, d = installed
    conf = under(dest, d["sysconfdir"] + "/wsbroker/wsbroker.conf")
    text = conf.read_text()
    active = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert active == ["db %s/lib/wsbroker/wsbroker.db" % d["localstatedir"]], active
    out = run([under(dest, d["sbindir"] + "/wsbroker"), "--check-config", "-c", conf],
              env=_sanitizer_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == text.splitlines()[1:]


# ---- the systemd unit ----

@pytest.fixture(scope="module")
def unit(installed, tmp_path_factory):
    """The installed unit, its ExecStart pointed at the DESTDIR binary so that
    systemd-analyze, which checks the command exists, can run it here."""
    dest, d = installed
    text = under(dest, d["systemdsystemunitdir"] + "/wsbroker.service").read_text()
    copy = tmp_path_factory.mktemp("unit") / "wsbroker.service"
    copy.write_text(text.replace("ExecStart=%s/wsbroker " % d["sbindir"],
                                 "ExecStart=%s/wsbroker " % under(dest, d["sbindir"])))
    return text, copy, dest, d


def test_unit_has_the_contract_settings(unit):
    text, _, _, d = unit
    lines = text.splitlines()
    for want in ["Type=notify",
                 "ExecStart=%s/wsbroker -c %s/wsbroker/wsbroker.conf" % (d["sbindir"], d["sysconfdir"]),
                 "ExecReload=/bin/kill -HUP $MAINPID", "User=wsbroker", "Group=wsbroker",
                 "StateDirectory=wsbroker", "WorkingDirectory=/var/lib/wsbroker",
                 "LimitNOFILE=1048576", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "Restart=on-failure",
                 "WantedBy=multi-user.target"]:
        assert want in lines, "unit lacks %r" % want
    assert not re.search(r"@[a-z_]+@", text), "unsubstituted @var@ in the unit"


def test_unit_passes_systemd_analyze_verify(unit):
    _, copy, dest, d = unit
    env = dict(os.environ, MANPATH=str(under(dest, d["man8dir"]).parent), SYSTEMD_LOG_COLOR="0")
    out = run(["systemd-analyze", "verify", copy], env=env, cwd=copy.parent)
    assert out.returncode == 0 and out.stderr.strip() == "" and out.stdout.strip() == "", (
        out.returncode, out.stdout, out.stderr)

    # ...and verify does catch a broken unit here
    broken = copy.parent / "broken.service"
    broken.write_text(copy.read_text().replace("Type=notify", "Type=notifyy"))
    bad = run(["systemd-analyze", "verify", broken], env=env, cwd=copy.parent)
    assert "notifyy" in bad.stderr, bad.stderr


def test_unit_exposure_is_ok(unit):
    _, copy, _, _ = unit
    out = run(["systemd-analyze", "security", "--offline=true",
               "--threshold=%d" % round(EXPOSURE_MAX * 10), copy])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= EXPOSURE_MAX, out.stdout
    assert out.returncode == 0, out.stdout + out.stderr


# ---- the release tarball ----

def test_make_distcheck(tmp_path):
    """A scratch configure of this tree, then make distcheck: the tarball
    configures, builds and passes make check out of tree, installs and
    uninstalls cleanly."""
    build = tmp_path / "build"
    build.mkdir()
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    conf = run([REPO / "configure", "-q"], cwd=build, env=env, timeout=300)
    assert conf.returncode == 0, conf.stderr
    t0 = time.monotonic()
    out = run(["nice", "make", "-j2", "distcheck", "DISTCHECK_CONFIGURE_FLAGS=--enable-werror"],
              cwd=build, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "archives ready for distribution" in out.stdout
    tarballs = list(build.glob("wsbroker-*.tar.xz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for need in ["configure", "Makefile.in", "data/wsbroker.service.in", "docs/configuration.md",
                 "tests/unit/test_config.c", "tests/fuzz/fuzz.h", "broker/notify.c",
                 "broker/config_doc.c", "tests/integration/test_service.py"]:
        assert need in names, "tarball lacks " + need
    built = [n for n in names if n.endswith((".o", ".a")) or n in ("broker/wsbroker",)]
    assert not built, "build products in the tarball: %s" % built
    print("make distcheck took %.0f s" % (time.monotonic() - t0))
    shutil.rmtree(build, ignore_errors=True)
