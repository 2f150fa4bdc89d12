"""pytest harness: start the real broker (or the echo test broker) on free
loopback ports and stop it afterwards.

The build directory comes from WSB_BUILD_DIR (default: the repository root,
i.e. an in-tree build). Brokers write a --port-file once every listener is
bound; tests read their ports from it. A broker stopped by a fixture must exit
0, so that AddressSanitizer, LeakSanitizer and UBSan reports (which make the
process exit non-zero) fail the test that caused them.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("WSB_BUILD_DIR", str(REPO))).resolve()
BINARIES = {
    "wsbroker": BUILD / "broker" / "wsbroker",
    "echo-broker": BUILD / "tests" / "echo-broker",
}
DEFAULT_LISTENERS = ["127.0.0.1:0/auto", "127.0.0.1:0/ws",
                     "127.0.0.1:0/mqtt", "127.0.0.1:0/stomp"]
START_TIMEOUT = 10.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def _sanitizer_env():
    env = dict(os.environ)
    # Sanitizer findings must end the process with a non-zero status, and
    # write to stderr, which is our log file.
    env["ASAN_OPTIONS"] = ":".join(filter(None, [
        env.get("ASAN_OPTIONS", ""), "detect_leaks=1", "abort_on_error=0"]))
    env["UBSAN_OPTIONS"] = ":".join(filter(None, [
        env.get("UBSAN_OPTIONS", ""), "halt_on_error=1", "print_stacktrace=1"]))
    return env


def _parse_addr(text):
    """'127.0.0.1:40123' or '[::1]:40123' -> (host, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Broker:
    """One broker process. start() returns once its port file is complete."""

    def __init__(self, workdir=None):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="wsb-itest-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.ports = {}
        self.addrs = []
        self.port_lines = []
        self.config_path = None
        self.log_path = self.dir / "broker.log"
        self.port_file = self.dir / "ports"
        self.returncode = None
        self.stop_sent = False

    # -- life cycle --
    def start(self, binary="wsbroker", args=(), config_text=None, wait=True,
              port_file=True, default_listeners=True, log_level="debug", preexec_fn=None):
        """Spawn the broker. binary: 'wsbroker', 'echo-broker' or a path.
        config_text: written to a file passed with -c. Unless args contain
        --listen (or the config has a listener line), the four default test
        listeners are added, all on free ports. log_level: passed as
        --log-level unless None or args carry their own. preexec_fn: run
        in the child before exec (resource limits)."""
        exe = BINARIES.get(binary, Path(binary))
        if not exe.exists():
            pytest.fail("broker binary %s not built (WSB_BUILD_DIR=%s)" % (exe, BUILD))
        args = list(args)
        argv = [str(exe)]
        if config_text is not None:
            self.config_path = self.dir / "wsbroker.conf"
            self.config_path.write_text(config_text)
            argv += ["-c", str(self.config_path)]
        has_listen = any(a == "--listen" or a.startswith("--listen=") for a in args)
        cfg_listen = config_text is not None and any(
            line.split()[:1] == ["listener"] for line in config_text.splitlines())
        if default_listeners and not has_listen and not cfg_listen:
            for spec in DEFAULT_LISTENERS:
                argv += ["--listen", spec]
        if "--db" not in args:
            argv += ["--db", ":memory:"]
        if log_level and "--log-level" not in args:
            argv += ["--log-level", log_level]
        if port_file:
            argv += ["--port-file", str(self.port_file)]
        argv += args
        self.argv = argv
        self.expected_listeners = sum(1 for a in argv if a == "--listen") or None
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self.dir), env=_sanitizer_env(),
                                     preexec_fn=preexec_fn)
        if wait and port_file:
            self._wait_port_file()
        return self

    def _wait_port_file(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                pytest.fail("broker exited with %d before writing its port file:\n%s"
                            % (self.proc.returncode, self.log()))
            try:
                text = self.port_file.read_text()
            except FileNotFoundError:
                text = ""
            if text.endswith("\n"):
                lines = text.splitlines()
                # More lines than listeners is complete too (and wrong): the
                # test that looks at them says so, instead of a timeout.
                complete = (len(lines) >= self.expected_listeners
                            if self.expected_listeners else text == last)
                if complete:
                    self._parse_ports(lines)
                    return
            last = text
            time.sleep(0.02)
        self.kill()
        pytest.fail("no complete port file after %.0f s:\n%s" % (START_TIMEOUT, self.log()))

    def _parse_ports(self, lines):
        self.port_lines = lines
        for line in lines:
            kind, addr = line.split()
            host, port = _parse_addr(addr)
            self.addrs.append((kind, host, port))
            self.ports.setdefault(kind, port)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_sent = True
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig and wait for the exit; returns the exit status (negative:
        killed by a signal). A broker that outlives timeout is killed and the
        test fails."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # Once told to stop, a broker is only waited for: a second
            # signal could land after its handlers are gone and kill it.
            if not self.stop_sent:
                self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_log()
                pytest.fail("broker still running %s s after signal %d:\n%s"
                            % (timeout, sig, self.log()))
        self._close_log()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def wait(self, timeout=10):
        """Wait for an exit the test expects (e.g. a config error)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("broker did not exit within %s s:\n%s" % (timeout, self.log()))
        self._close_log()
        self.returncode = self.proc.returncode
        return self.returncode

    def _close_log(self):
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()

    # -- what tests look at --
    def log(self):
        """Everything the broker wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=3.0, start=0):
        """Wait until text appears in the log after offset start; returns the
        offset just past it, or fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            i = log.find(text, start)
            if i >= 0:
                return i + len(text)
            if time.monotonic() > deadline:
                pytest.fail("%r not in broker log after %.1f s:\n%s" % (text, timeout, log[start:]))
            time.sleep(0.02)

    def sanitizer_report(self):
        log = self.log()
        return next((m for m in SANITIZER_MARKS if m in log), None)

    def port(self, kind):
        return self.ports[kind]

    def ws_url(self, path="/"):
        kind = "ws" if "ws" in self.ports else "auto"
        host = next(h for k, h, _ in self.addrs if k == kind)
        if ":" in host:
            host = "[%s]" % host
        return "ws://%s:%d%s" % (host, self.ports[kind], path)


def _finish(b, check_exit):
    """Teardown: stop a broker the test left running and check that it
    exited cleanly (sanitizer reports are a failure either way)."""
    was_running = b.running()
    if was_running:
        rc = b.stop()
    else:
        b.kill()
        rc = b.returncode
    report = b.sanitizer_report()
    if report:
        pytest.fail("sanitizer report in broker log (%s):\n%s" % (report, b.log()[-8000:]))
    if was_running and check_exit and rc != 0:
        pytest.fail("broker exited with %s at teardown:\n%s" % (rc, b.log()[-8000:]))


@pytest.fixture
def start_broker(tmp_path):
    """Factory: start_broker(binary='wsbroker', args=(), config_text=None,
    check_exit=True, **start_kwargs) -> Broker. Each broker still running at
    teardown is stopped with SIGTERM and, when check_exit, must exit 0."""
    started = []

    def start(binary="wsbroker", args=(), config_text=None, check_exit=True, **kw):
        b = Broker(tmp_path / ("broker%d" % len(started)))
        started.append((b, check_exit))
        return b.start(binary, args, config_text, **kw)

    yield start
    errors = []
    for b, check_exit in started:
        try:
            _finish(b, check_exit)
        except BaseException as e:  # stop every broker before failing
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def binaries():
    """{'wsbroker': Path, 'echo-broker': Path} in the build directory."""
    return dict(BINARIES)


@pytest.fixture
def broker(start_broker):
    """The real wsbroker with the default test listeners."""
    return start_broker("wsbroker")


@pytest.fixture
def echo_broker(start_broker):
    """tests/echo-broker (wsbroker plus the test-only echo protocol)."""
    return start_broker("echo-broker")


# ---- a test PKI, made with the openssl command ----

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _leaf(d, name, cn, ca, ext):
    d = Path(d)
    (d / (name + ".ext")).write_text(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-days", "2", "-out", name + ".pem",
             "-extfile", name + ".ext", cwd=d)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Test certificates made with the openssl command, once per session, for
    every test that needs TLS. {name: Path}: ca, ca2 (another CA), server,
    server2 (a second server certificate, same CA), alice and mallory
    (client certificates from ca and ca2), each with .pem and .key."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "ca2"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                 "-subj", "/CN=wsbroker test " + ca, cwd=d)
    srv = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
    cli = "extendedKeyUsage=clientAuth"
    _leaf(d, "server", "localhost", "ca", srv)
    _leaf(d, "server2", "localhost", "ca", srv)
    _leaf(d, "alice", "alice", "ca", cli)
    _leaf(d, "mallory", "mallory", "ca2", cli)
    return {n: d / n for n in ("ca", "ca2", "server", "server2", "alice", "mallory")}
