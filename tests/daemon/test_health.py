import logging

import trio

from postbackd.daemon._health import LogWriterProbe


class HeldLog:
    """A stand-in for EventLog that records each probe and commits it only when the test calls commit()."""

    path = "/var/lib/postbackd/events.sqlite3"

    def __init__(self) -> None:
        self.waiting: list = []
        self.submitted = 0

    def submit(self, appends, callback) -> None:
        assert appends == []
        self.submitted += 1
        self.waiting.append(callback)

    def commit(self) -> None:
        for callback in self.waiting:
            callback([])
        self.waiting.clear()


async def test_probe_healthy_while_writer_commits(autojump_clock):
    log = HeldLog()
    probe = LogWriterProbe(log, stall_limit=30)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe.run, 15)
        for _ in range(4):
            await trio.sleep(1)
            assert probe.healthy()
            log.commit()
            await trio.sleep(14)
        # The probe and this task both wake at t=60 in an order trio may vary,
        # so the count is read a second later, after the probe of t=60.
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert log.submitted == 5


async def test_probe_unhealthy_after_stall_limit(autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="postbackd.daemon")
    log = HeldLog()
    probe = LogWriterProbe(log, stall_limit=30)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe.run, 15)
        await trio.sleep(29.5)
        assert probe.healthy()
        await trio.sleep(1)
        assert not probe.healthy()
        await trio.sleep(15)
        assert not probe.healthy()
        # One probe at a time: the stalled one is not joined by more.
        assert log.submitted == 1

        log.commit()
        assert probe.healthy()
        await trio.sleep(15)
        assert log.submitted == 2
        nursery.cancel_scope.cancel()

    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert errors == [
        "the event log writer has not committed for 30 s; check the disk of /var/lib/postbackd/events.sqlite3"
    ]
    assert "the event log writer commits again" in caplog.text
