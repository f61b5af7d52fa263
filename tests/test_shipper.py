"""The log shipper (``respool.bench.shipper``, tour section 9): every implementation delivers
every record intact, the receiver catches a not-quite-clean buffer and reports a lost datagram
as missing, and the tour section and the bench scenario run and report what they measured.

Nothing here asserts a speed: the machines are shared and the inputs tiny.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable

import pytest

from respool.bench import shipper
from respool.bench._report import render_table
from respool.bench._run import Budget, Context
from respool.bench.shipper import (
    BATCH,
    HEADER,
    IMPLEMENTATIONS,
    NO_POOL,
    PAYLOAD,
    WORKERS,
    Batch,
    Outlet,
    Receiver,
    Tally,
    check_batch,
    make_batches,
    verify,
)
from respool.tour import shipper as section

pytestmark = pytest.mark.timeout(60)

#: Every count at its floor and two rounds, as in tests/test_bench.py.
TINY = Budget(scale=0.0, rounds_scale=0.0, min_rounds=2)
#: Not a multiple of any batch size: the last batch is a short one.
RECORDS = 300


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("batch", [16, BATCH])
def test_every_implementation_delivers_every_record_intact(name: str, batch: int) -> None:
    """Each implementation's every record arrives, each one equal to the record sent."""
    batches = make_batches(RECORDS, batch)
    with Receiver() as receiver:
        delivery = receiver.deliver(IMPLEMENTATIONS[name], batches)
    tally = verify(delivery, batches)
    assert delivery.complete
    assert (tally.sent, tally.intact) == (RECORDS, RECORDS)
    assert (tally.corrupted, tally.missing, tally.stray) == (0, 0, 0)
    assert tally.perfect
    assert len(delivery.datagrams) == delivery.sent >= len(batches)


def test_a_batch_larger_than_a_datagram_is_sliced_and_put_back_together() -> None:
    """A batch that compresses to more than one payload goes out in several datagrams, none
    larger than the limit, and arrives whole."""
    batches = make_batches(BATCH * 4, BATCH)
    with Receiver() as receiver:
        delivery = receiver.deliver(IMPLEMENTATIONS[NO_POOL], batches)
    headers = [HEADER.unpack_from(d) for d in delivery.datagrams]
    assert max(h[6] for h in headers) > 1  # slice count
    assert max(len(d) for d in delivery.datagrams) <= shipper.DATAGRAM
    assert all(h[7] <= PAYLOAD for h in headers)
    assert verify(delivery, batches).perfect


def test_flow_control_with_a_tiny_window_still_delivers_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With only the minimum of datagrams allowed in flight, shippers wait for credits and
    nothing is lost or stalls."""
    monkeypatch.setattr(shipper, "_TRUESIZE", 1 << 40)
    batches = make_batches(RECORDS, 16)
    with Receiver() as receiver:
        assert receiver.window == 8
        delivery = receiver.deliver(IMPLEMENTATIONS[WORKERS], batches)
    tally = verify(delivery, batches)
    assert tally.perfect
    assert tally.stalls == 0


def test_the_smallest_common_receive_buffer_still_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the receive buffer most Linux machines allow by default (208 KiB), the credits
    it yields keep every datagram of a burst of large batches from being dropped."""
    monkeypatch.setattr(shipper, "RCVBUF", 212_992)
    batches = make_batches(BATCH * 100, BATCH)
    with Receiver() as receiver:
        assert receiver.rcvbuf <= 2 * 212_992
        delivery = receiver.deliver(IMPLEMENTATIONS[NO_POOL], batches)
    tally = verify(delivery, batches)
    assert tally.perfect
    assert tally.received == tally.datagrams


def test_not_quite_clean_buffers_are_caught_by_the_receiver() -> None:
    """The reset that wipes but does not rewind corrupts the first record of every batch
    written into a reused buffer, and the receiver counts exactly those as corrupted."""
    tally, reused = shipper.pitfall(BATCH * 12)
    assert reused > 0
    assert tally.corrupted == reused
    assert tally.missing == 0
    assert tally.intact == tally.sent - reused
    assert not tally.perfect


def test_the_dirty_batch_passes_its_checksum_but_not_the_comparison() -> None:
    """What the pitfall puts on the wire decompresses fine (the transport is intact); only
    the record-by-record comparison finds the damage."""
    batch = make_batches(BATCH)[0]
    scratch = shipper.Scratch()
    scratch.write(b"x" * 100)
    scratch.wipe()
    shipper._serialize(batch, scratch)
    data = bytes(scratch.data[: scratch.pos])
    assert zlib.decompress(zlib.compress(data)) == data
    tally = Tally()
    check_batch(data, batch, tally)
    assert (tally.intact, tally.corrupted) == (len(batch.records) - 1, 1)


def _lines(batch: Batch) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() for r in batch.records]


def test_the_receiver_compares_every_field_not_just_the_serial() -> None:
    """A record with the right serial number but one field changed is corrupted; so is a
    record out of place; a line nobody sent is stray."""
    batch = make_batches(4, 4)[0]
    lines = _lines(batch)
    intact = Tally()
    check_batch(b"\n".join(lines) + b"\n", batch, intact)
    assert (intact.intact, intact.corrupted, intact.stray) == (4, 0, 0)

    changed = dict(batch.records[1], status=999)
    lines[1] = json.dumps(changed, separators=(",", ":")).encode()
    lines[2], lines[3] = lines[3], lines[2]
    lines.append(lines[0])
    tally = Tally()
    check_batch(b"\n".join(lines) + b"\n", batch, tally)
    assert (tally.intact, tally.corrupted, tally.stray) == (1, 3, 1)


def _dropper(batch_index: int) -> tuple[list[int], Callable[[bytes], bool]]:
    """A receiver hook that throws away the first datagram of one batch, once."""
    dropped: list[int] = []
    lock = threading.Lock()

    def drop(datagram: bytes) -> bool:
        index, piece = HEADER.unpack_from(datagram)[4:6]
        with lock:
            if index == batch_index and piece == 0 and not dropped:
                dropped.append(index)
                return True
        return False

    return dropped, drop


def test_a_dropped_datagram_is_reported_missing() -> None:
    """A datagram lost on the way costs its batch: those records are missing, not intact,
    not corrupted, and every other record still arrives intact."""
    batches = make_batches(RECORDS, 16)
    dropped, drop = _dropper(3)
    with Receiver(drop=drop) as receiver:
        delivery = receiver.deliver(IMPLEMENTATIONS[NO_POOL], batches)
    tally = verify(delivery, batches)
    assert dropped == [3]
    assert tally.received == tally.datagrams - 1
    assert tally.missing == len(batches[3].records)
    assert tally.intact == RECORDS - tally.missing
    assert tally.corrupted == 0
    assert not tally.perfect


def test_a_dropped_datagram_breaks_the_rest_of_a_stream_and_says_so() -> None:
    """On a worker's stream a lost batch makes the rest of that stream undecodable: all of
    it is counted missing, nothing is passed off as intact."""
    batches = make_batches(RECORDS, 16)
    dropped, drop = _dropper(2)
    with Receiver(drop=drop) as receiver:
        delivery = receiver.deliver(IMPLEMENTATIONS[WORKERS], batches)
    tally = verify(delivery, batches)
    assert dropped == [2]
    assert tally.missing >= len(batches[2].records)
    assert tally.intact + tally.missing == RECORDS
    assert tally.corrupted == 0


def test_an_outlet_left_mid_batch_is_refused_by_its_reset() -> None:
    """A worker's outlet whose batch was cut short raises in reset, so the pool destroys it
    instead of reusing a stream that is out of step with the receiver's."""
    with Receiver() as receiver:
        outlet = Outlet(receiver.link())
        try:
            outlet.busy = True
            with pytest.raises(RuntimeError, match="mid-batch"):
                outlet.reset()
            outlet.busy = False
            outlet.reset()
        finally:
            outlet.close()


def test_tour_section_runs_quick_and_prints_the_integrity_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The quick section prints both tables, an integrity line with every record intact,
    and the pitfall caught, all within 80 columns."""
    lesson = section.run(quick=True)
    out = capsys.readouterr().out
    integrity = next(line for line in out.splitlines() if "Integrity:" in line)
    sent = integrity.split("Integrity: ")[1].split(" records sent")[0]
    assert f"{sent} records sent" in out
    assert f"{sent} intact, 0 corrupted, 0 missing" in " ".join(out.split())
    assert "records a batch" in out
    assert "Not quite clean" in out
    assert "caught every one" in lesson
    assert "NOT" not in lesson
    assert all(len(line) <= 80 for line in out.splitlines())


def test_scenario_runs_on_the_tiny_budget_and_produces_figures() -> None:
    """The bench scenario gives a table per batch size (records/s, ratios to no pool, every
    record intact) and a table of per-step costs, all with positive figures."""
    tables = shipper.run(Context(TINY))
    assert [t.key for t in tables] == ["shipper-16", f"shipper-{BATCH}", "shipper-costs"]
    for table in tables:
        assert sum(row.baseline for row in table.rows) == 1
        for row in table.rows:
            assert row.best is not None and row.best > 0
            assert row.median is not None and row.median > 0
            if row.baseline:
                assert row.ratio == pytest.approx(1.0)
        render_table(table)
    for table in tables[:2]:
        assert table.higher_is_better
        assert [row.name for row in table.rows] == list(IMPLEMENTATIONS)
        for row in table.rows:
            done, sent = str(row.extra["intact"]).split("/")
            assert done == sent
    assert any("Pitfall" in note for note in tables[1].notes)
