"""The Debian package, built and installed the way an operator would.

One build per run (module fixture): the tracked files of this checkout are
copied into a temporary directory (so the build never writes into the
checkout), `dpkg-buildpackage -us -uc -b` builds the .deb there with
DEB_BUILD_OPTIONS="nocheck parallel=2" (make check already runs in its own
CI step), and the tests then look at what came out:

- lintian on the .changes and the .deb: any E: line fails, W: lines show
  in pytest's warnings summary;
- `dpkg --root` unpacks the .deb into a scratch root with its own dpkg
  database (what dpkg records: status, owned files, the conffile), and
  `dpkg-deb -x` gives the layout an install leaves, where the files, their
  owners and modes, the man pages and the unit are checked and the packaged
  binary validates the packaged sample config;
- the package's real postinst runs in a private mount namespace whose /etc
  is a throwaway copy of the host's, so the real adduser creates the
  wsbroker system user there and never in the host's /etc/passwd.
  systemd's helpers are stand-ins on PATH that record how they were called.

Needs root (dpkg --root writes root-owned files; unshare needs
CAP_SYS_ADMIN), as CI and scripts/test run; debhelper, lintian and
libsystemd-dev come from scripts/install-deps.
"""

import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.1.0-1"
BUILD_TIMEOUT = 900
SBIN = "/usr/sbin/wsbroker"
CONF = "/etc/wsbroker/wsbroker.conf"
UNIT = "/lib/systemd/system/wsbroker.service"
MAN8 = "/usr/share/man/man8/wsbroker.8.gz"
MAN5 = "/usr/share/man/man5/wsbroker.conf.5.gz"
STATE_DIR = "/var/lib/wsbroker"

# dpkg and adduser live in sbin; a test runner's PATH may not have it.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, **kw)


def _copy_tree(dest):
    """The checkout as git sees it (tracked files, with their edits), never
    build directories or node_modules."""
    listing = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached"],
                             stdout=subprocess.PIPE, check=True).stdout
    for rel in filter(None, listing.decode().split("\0")):
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _build_env():
    env = {k: v for k, v in os.environ.items()
           # A surrounding make's jobserver or flags must not leak into
           # the package build, nor this repository's own build settings.
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CFLAGS", "LDFLAGS",
                        "CPPFLAGS", "WSB_CONFIGURE_FLAGS")}
    env.update(PATH=SYSTEM_PATH + ":" + env.get("PATH", ""),
               DEB_BUILD_OPTIONS="nocheck parallel=2",
               DEB_BUILD_PROFILES="nocheck", LC_ALL="C.UTF-8")
    return env


@pytest.fixture(scope="module")
def pkg():
    assert os.geteuid() == 0, "the Debian package test runs as root (as CI does)"
    for tool in ("git", "dpkg-buildpackage", "dh", "lintian", "dpkg-deb", "unshare", "adduser"):
        assert shutil.which(tool, path=SYSTEM_PATH), (
            f"{tool} not found: run scripts/install-deps --test")
    work = Path(tempfile.mkdtemp(prefix="wsb-deb-"))
    src = work / "wsbroker"
    src.mkdir()
    _copy_tree(src)
    arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
    log = work / "build.log"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(["nice", "-n", "10", "dpkg-buildpackage", "-us", "-uc", "-b"],
                              cwd=src, env=_build_env(), stdout=out,
                              stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    elapsed = time.monotonic() - started
    print(f"dpkg-buildpackage took {elapsed:.0f} s")
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-80:]
        pytest.fail(f"dpkg-buildpackage failed (tree and log kept in {work}):\n"
                    + "\n".join(tail))
    deb = work / f"wsbroker_{VERSION}_{arch}.deb"
    changes = work / f"wsbroker_{VERSION}_{arch}.changes"
    assert deb.is_file(), f"no {deb.name}; the build made {sorted(p.name for p in work.iterdir())}"
    assert changes.is_file(), f"no {changes.name}"
    ctrl = work / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    yield {"work": work, "deb": deb, "changes": changes, "control": ctrl}
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def tree(pkg):
    """The files the .deb installs, as they land on disk (dpkg-deb -x keeps
    modes and, as root, owners)."""
    t = pkg["work"] / "tree"
    subprocess.run(["dpkg-deb", "-x", str(pkg["deb"]), str(t)], check=True)
    return t


@pytest.fixture(scope="module")
def root(pkg):
    """The .deb unpacked by dpkg itself into a scratch root that has its own
    dpkg database. Only unpacked: configuring would run the postinst
    chrooted into a root that has no shell (the postinst test runs it)."""
    r = pkg["work"] / "root"
    admin = r / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").touch()
    (admin / "available").touch()
    env = dict(os.environ, PATH=SYSTEM_PATH)
    # --force-depends: libc, libevent and the rest are on the host, not in
    # the scratch root's database.
    proc = _run(["dpkg", f"--root={r}", "--force-depends", "--force-not-root",
                 "--unpack", str(pkg["deb"])], env=env)
    assert proc.returncode == 0, proc.stdout
    return r


def _mode(path):
    return stat.S_IMODE(path.lstat().st_mode)


def test_lintian_reports_no_errors(pkg):
    proc = _run(["lintian", "--display-info", str(pkg["changes"]), str(pkg["deb"])],
                timeout=600, env=dict(os.environ, PATH=SYSTEM_PATH))
    print(proc.stdout)
    lines = proc.stdout.splitlines()
    # Warnings do not fail the test, but pytest's summary shows them.
    for line in lines:
        if line.startswith("W:"):
            warnings.warn(f"lintian: {line}")
    errors = [line for line in lines if line.startswith("E:")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    # 1 means errors (caught above); anything else is lintian itself failing.
    assert proc.returncode == 0, f"lintian exited {proc.returncode}:\n{proc.stdout}"


def test_package_contents_are_root_owned_and_only_the_daemon_is_executable(pkg):
    listing = _run(["dpkg-deb", "-c", str(pkg["deb"])]).stdout.splitlines()
    assert listing, "empty package"
    executables = []
    for line in listing:
        perms, owner, _size, _date, _time, name = line.split(None, 5)
        name = name.split(" -> ")[0].lstrip(".")
        assert owner == "root/root", f"{name} is owned by {owner}"
        if perms.startswith("-") and "x" in perms:
            executables.append(name)
    # The test brokers and benchmark tools are built, never shipped.
    assert executables == [SBIN], executables
    # The unit is Type=notify: a daemon built without sd_notify would never
    # report ready, so the package must link libsystemd and depend on it.
    depends = _run(["dpkg-deb", "-f", str(pkg["deb"]), "Depends"]).stdout
    for dep in ("libsystemd0", "libevent-2.1", "libsqlite3-0", "libssl3", "adduser"):
        assert dep in depends, f"Depends lacks {dep}: {depends}"


def test_dpkg_installs_it_into_a_scratch_root(root):
    """dpkg's own view: the package is unpacked, owns the files an operator
    looks for, and keeps the sample config as a conffile (so an operator's
    edits survive upgrades). dpkg leaves a new conffile as .dpkg-new until
    the configure step; the tests below read the final layout from tree."""
    env = dict(os.environ, PATH=SYSTEM_PATH)
    status = _run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                   "-f=${Status} ${Version}", "wsbroker"], env=env)
    assert status.stdout == f"install ok unpacked {VERSION}", status.stdout
    owned = _run(["dpkg", f"--root={root}", "-L", "wsbroker"], env=env).stdout.split()
    for path in (SBIN, CONF, UNIT, MAN8, MAN5, "/usr/share/doc/wsbroker/copyright"):
        assert path in owned, f"dpkg -L wsbroker does not list {path}"
    assert (root / SBIN.lstrip("/")).is_file()
    conffiles = _run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                      "-f=${Conffiles}", "wsbroker"], env=env).stdout.split()
    assert CONF in conffiles, conffiles


def test_daemon_is_installed_in_sbin_and_runs(tree):
    binary = tree / SBIN.lstrip("/")
    assert binary.is_file(), "no /usr/sbin/wsbroker"
    assert _mode(binary) == 0o755
    assert not (tree / "usr/bin").exists()
    proc = _run([str(binary), "--version"], timeout=10)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.split()[:2] == ["wsbroker", VERSION.split("-")[0]], proc.stdout


@pytest.mark.parametrize("page,section,mentions", [
    (MAN8, "8", ["--check-config", "--listen"]),
    (MAN5, "5", ["listener", "log_level", "shutdown_timeout_ms"]),
])
def test_man_pages_are_gzipped_roff(tree, page, section, mentions):
    path = tree / page.lstrip("/")
    assert path.is_file(), f"no {page}"
    assert _mode(path) == 0o644
    text = gzip.decompress(path.read_bytes()).decode()
    th = [line for line in text.splitlines() if line.startswith(".TH ")]
    assert th and th[0].split()[2].strip('"') == section, th
    for word in mentions:
        # roff escapes '-' as '\-'
        assert word in text.replace("\\-", "-"), f"{page} does not mention {word}"


def test_sample_config_is_a_valid_conffile(tree, pkg):
    conf = tree / CONF.lstrip("/")
    assert conf.is_file(), f"no {CONF}"
    assert _mode(conf) == 0o644
    assert CONF in (pkg["control"] / "conffiles").read_text().split()
    text = conf.read_text()
    # The database goes into the unit's StateDirectory, the one key the
    # sample sets away from its default; the rest are commented defaults.
    active = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert active == [f"db {STATE_DIR}/wsbroker.db"], active
    assert "# listener " in text and "# log_level " in text
    proc = _run([str(tree / SBIN.lstrip("/")), "--check-config", "-c", str(conf)], timeout=10)
    assert proc.returncode == 0, proc.stdout
    assert f"db {STATE_DIR}/wsbroker.db" in proc.stdout.splitlines(), proc.stdout


def test_systemd_unit_is_installed_with_package_paths(tree):
    unit = tree / UNIT.lstrip("/")
    assert unit.is_file(), f"no {UNIT}"
    assert _mode(unit) == 0o644
    text = unit.read_text()
    lines = set(text.splitlines())
    for want in ("Type=notify", f"ExecStart={SBIN} -c {CONF}", "User=wsbroker",
                 "Group=wsbroker", "StateDirectory=wsbroker", "LimitNOFILE=1048576",
                 "WantedBy=multi-user.target"):
        assert want in lines, f"{UNIT} lacks {want}"
    left = re.findall(r"@[a-z_]+@", text)
    assert not left, f"unsubstituted: {left}"


STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
exit 0
"""


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _passwd_entry(etc, name):
    rows = [line.split(":") for line in (etc / "passwd").read_text().splitlines()]
    return [r for r in rows if r[0] == name]


def test_postinst_creates_the_system_user_and_enables_the_unit(pkg):
    """The real postinst (with dh_installsystemd's part) runs twice, as on
    an install and then an upgrade, in a mount namespace where /etc is a
    copy: adduser really runs, and the host's users stay untouched."""
    postinst = pkg["control"] / "postinst"
    assert postinst.is_file(), "the package has no postinst"
    work = pkg["work"] / "postinst"
    etc = work / "etc"
    work.mkdir()
    subprocess.run(["cp", "-a", "/etc", str(etc)], check=True)
    stubs = work / "bin"
    stubs.mkdir()
    calls = work / "calls.log"
    for tool in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
        (stubs / tool).write_text(STUB.format(log=calls))
        (stubs / tool).chmod(0o755)
    account_files = ("passwd", "group", "shadow", "gshadow")
    before = {f: _digest(Path("/etc", f)) for f in account_files}
    # useradd also writes its lastlog/faillog records under /var/log: a
    # tmpfs there keeps those writes inside the namespace too.
    script = (f'set -e; mount --bind "{etc}" /etc; mount -t tmpfs tmpfs /var/log; '
              f'sh "{postinst}" configure; sh "{postinst}" configure {VERSION}')
    proc = _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env=dict(os.environ, PATH=f"{stubs}:{SYSTEM_PATH}"), timeout=60)
    for f in account_files:
        assert _digest(Path("/etc", f)) == before[f], f"the postinst changed the host's /etc/{f}"
    assert proc.returncode == 0, proc.stdout

    users = _passwd_entry(etc, "wsbroker")
    assert len(users) == 1, users  # the second run did not add another
    _name, _pw, uid, gid, _gecos, home, shell = users[0]
    assert 100 <= int(uid) < 1000, f"wsbroker has uid {uid}, not a system uid"
    assert home == STATE_DIR and shell == "/usr/sbin/nologin", users[0]
    groups = [line.split(":") for line in (etc / "group").read_text().splitlines()]
    assert [g[2] for g in groups if g[0] == "wsbroker"] == [gid], "no wsbroker group as its primary group"
    assert any(line.startswith("wsbroker:") for line in (etc / "shadow").read_text().splitlines())

    log = calls.read_text().splitlines() if calls.exists() else []
    assert "deb-systemd-helper enable wsbroker.service" in log, log
