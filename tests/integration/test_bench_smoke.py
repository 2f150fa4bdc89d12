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
