"""The load generator works end to end against the real broker: a short
fan-out over each protocol and transport delivers every message it sent to
every subscriber, with nothing lost, duplicated or out of order. These are
correctness checks of bench/wsbroker-bench, not performance measurements
(figures come from the benchmark runs, never from the test suite)."""
import json
import subprocess

import pytest

from conftest import BUILD

BENCH = BUILD / "bench" / "wsbroker-bench"


@pytest.mark.parametrize("proto,transport", [
    ("mqtt", "tcp"), ("mqtt", "ws"), ("stomp", "tcp"), ("stomp", "ws"),
])
def test_fanout_delivers_everything(broker, proto, transport):
    kind = "ws" if transport == "ws" else proto
    out = subprocess.run(
        [str(BENCH), "--scenario", "fanout", "--proto", proto, "--transport", transport,
         "--port", str(broker.ports[kind]), "--subscribers", "5", "--rate", "200",
         "--duration", "1", "--warmup", "0.3", "--json"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["subscribers"] == 5 and r["proto"] == proto and r["transport"] == transport
    assert r["sent"] >= 100, r
    # Every message sent in the run (warm-up and final wait included) reaches
    # each of the 5 subscribers exactly once. The in-window counts are not
    # compared: they are read at the window's two ends, so a message sent just
    # before it opens and received inside it counts as delivered, not as sent.
    assert r["delivered_total"] == 5 * r["sent_total"], r
    assert r["delivered"] >= 100, r
    assert (r["lost"], r["dup"], r["ooo"], r["disconnects"]) == (0, 0, 0, 0), r
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["max"], r


# Two ways a broker bounds a subscriber that stopped reading (DESIGN.md,
# "Messages and fan-out"): past out_high_water it drops QoS 0 messages for it,
# past out_hard_limit it disconnects it. "drop" reaches the first (the hard
# limit is never reached: nothing is queued above the high-water mark);
# "close" sets the hard limit below the high-water mark, so it is reached
# first. Both stay far above what a normal subscriber has queued: the window
# keeps 8 x 8 KiB in flight.
HIGH_WATER = 262144
SLOW_LIMITS = {
    "drop": ["--set", "out_high_water=%d" % HIGH_WATER, "--set", "out_hard_limit=1048576"],
    "close": ["--set", "out_high_water=1048576", "--set", "out_hard_limit=131072"],
}
SLOW_SIZE = 8192


def kernel_send_buffer_max():
    """What the broker's socket send buffer to one slow subscriber may grow
    to (Linux: the third figure of tcp_wmem)."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


@pytest.mark.parametrize("bound", ["drop", "close"])
@pytest.mark.parametrize("proto,transport", [("mqtt", "tcp"), ("stomp", "ws")])
def test_fanout_slow_subscribers_bounded(start_broker, proto, transport, bound):
    """Two subscribers that stop reading do not cost the five others a single
    message, and the broker holds a bounded part of the stream for them:
    about 25 MB go to each (1,500 msgs/s of 8 KiB for 2 s), far past its
    4 KiB receive buffer, the broker's socket send buffer and its limit."""
    b = start_broker(args=SLOW_LIMITS[bound], log_level="info")
    kind = "ws" if transport == "ws" else proto
    out = subprocess.run(
        [str(BENCH), "--scenario", "fanout", "--proto", proto, "--transport", transport,
         "--port", str(b.ports[kind]), "--subscribers", "5", "--slow", "2",
         "--size", str(SLOW_SIZE), "--rate", "1500", "--window", "8",
         "--duration", "1.5", "--warmup", "0.5", "--broker-pid", str(b.proc.pid), "--json"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert (r["subscribers"], r["slow"]) == (5, 2), r
    # The normal subscribers: every message, once, in order, still connected.
    assert r["delivered_total"] == 5 * r["sent_total"], r
    assert (r["lost"], r["dup"], r["ooo"], r["bad"], r["disconnects"]) == (0, 0, 0, 0, 0), r
    # The slow ones got at most what the kernel's buffers on the way and the
    # broker's high-water mark hold (and a message over it), not the stream.
    held = 2 * (kernel_send_buffer_max() + HIGH_WATER + 65536) // SLOW_SIZE
    sent_to_slow = 2 * r["sent_total"]
    assert sent_to_slow > 2 * held, "too few messages to fill the buffers: %r" % r
    assert 0 < r["slow_received"] <= held, r
    if bound == "drop":
        assert r["slow_closed"] == 0, "QoS 0 past the high-water mark drops, not disconnects: %r" % r
        assert "past out_hard_limit" not in b.log()
    else:
        assert r["slow_closed"] == 2, r
        b.wait_log("past out_hard_limit")
    assert 0 < r["broker_rss_before"] and 0 < r["broker_rss_after"], r
