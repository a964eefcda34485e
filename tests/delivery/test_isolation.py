"""Partner isolation: a hanging and a dead partner do not delay a healthy one."""

from __future__ import annotations

from tests.delivery.daemon_setup import add_app, add_partner, add_postback, install, partner_status, send
from tests.delivery.servers import closed_port, hang

EVENTS = 30


def test_healthy_partner_is_not_delayed(daemon, make_receiver, make_raw_server, tmp_path):
    healthy = make_receiver()
    hanging = make_raw_server(hang)
    daemon.start("--attempt-timeout", "60s")
    add_app(daemon)
    # The failing partners come first, so their postbacks of each event are handed over first.
    add_partner(daemon, "hangnet", hanging.url)
    add_partner(daemon, "deadnet", f"http://127.0.0.1:{closed_port()}")
    add_partner(daemon, "fastnet", healthy.url)
    for network in ("hangnet", "deadnet", "fastnet"):
        add_postback(daemon, network)

    send(daemon, tmp_path, [install(n) for n in range(EVENTS)])

    requests = healthy.wait_for(EVENTS)
    status = daemon.wait_status(
        lambda s: next(p for p in s["partners"] if p["network"] == "fastnet")["delivered"] == EVENTS
    )
    hang_status = next(p for p in status["partners"] if p["network"] == "hangnet")
    assert sorted(r["query"]["id"] for r in requests) == sorted(f"i{n}" for n in range(EVENTS))
    # Every request slot of the hanging partner is still taken, and nothing of it has finished.
    assert hang_status["in_flight"] == 8
    assert hang_status["delivered"] + hang_status["failed"] + hang_status["retried"] == 0
    assert hang_status["pending"] == EVENTS
    hanging.wait_for_connections(8)
    assert hanging.connections == 8
    dead = partner_status(daemon, "deadnet")
    assert dead["delivered"] == 0
    assert dead["retried"] + dead["failed"] > 0
