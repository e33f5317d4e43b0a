"""The history checker catches every kind of anomaly it names, on synthetic
histories, and passes a clean one."""
import json
import subprocess
import sys
import os

import pytest

from checker import check, summary

HERE = os.path.dirname(os.path.abspath(__file__))


def send(value, partition, offset, invoke, complete, outcome="ok", process="p1"):
    op = {"op": "send", "process": process, "partition": partition, "value": value,
          "invoke": invoke, "complete": complete, "outcome": outcome}
    if outcome == "ok":
        op["offset"] = offset
    return op


def poll(records, partition=0, invoke=10.0, process="c1"):
    return {"op": "poll", "process": process, "partition": partition, "invoke": invoke,
            "complete": invoke + 0.01, "records": [list(r) for r in records]}


def final(records, partition=0, log_start=0):
    return {"op": "final", "partition": partition, "records": [list(r) for r in records], "log_start": log_start}


def clean():
    return [
        send("a", 0, 0, 1.0, 1.1),
        send("b", 0, 1, 1.2, 1.3),
        send("c", 0, None, 1.4, 1.5, outcome="unknown"),   # unknown, and it did land
        send("d", 0, None, 1.6, 1.7, outcome="fail"),      # failed, never read
        send("x", 1, 0, 1.0, 1.2, process="p2"),
        poll([(0, "a"), (1, "b")], invoke=2.0),
        poll([(2, "c")], invoke=2.5),
        final([(0, "a"), (1, "b"), (2, "c")]),
        final([(0, "x")], partition=1),
    ]


def kinds(history):
    return sorted({a["kind"] for a in check(history)})


def test_clean_history_has_no_anomaly():
    h = clean()
    assert check(h) == []
    s = summary(h, [])
    assert (s["sends"], s["acknowledged"], s["anomalies"]) == (5, 3, 0)


@pytest.mark.parametrize("mutate,expected", [
    # Two values at one offset.
    (lambda h: h + [poll([(1, "z")], process="c2")], ["inconsistent-offset", "phantom"]),
    # One value at two offsets (a retried send stored twice).
    (lambda h: h[:-2] + [final([(0, "a"), (1, "b"), (2, "c"), (3, "a")]), h[-1]], ["duplicate"]),
    # Read but never sent.
    (lambda h: h[:-2] + [final([(0, "a"), (1, "b"), (2, "c"), (3, "ghost")]), h[-1]], ["phantom"]),
    # Read although its send definitely failed.
    (lambda h: h[:-2] + [final([(0, "a"), (1, "b"), (2, "c"), (3, "d")]), h[-1]], ["failed-read"]),
    # Acknowledged, then gone.
    (lambda h: h[:-1] + [final([], partition=1)], ["lost"]),
    # Acknowledged at one offset, found at another.
    (lambda h: h[:-1] + [final([(5, "x")], partition=1)], ["wrong-offset"]),
    # A consumer skips an offset.
    (lambda h: h + [poll([(0, "a"), (2, "c")], process="c3", invoke=3.0)], ["poll-skip"]),
    # A consumer goes back.
    (lambda h: h + [poll([(1, "b"), (0, "a")], process="c4", invoke=3.0)], ["poll-backwards"]),
    # A send started after another was acknowledged gets a lower offset.
    (lambda h: [send("a", 0, 1, 1.0, 1.1), send("b", 0, 0, 1.2, 1.3), final([(0, "b"), (1, "a")])], ["send-order"]),
], ids=["inconsistent-offset", "duplicate", "phantom", "failed-read", "lost", "wrong-offset",
        "poll-skip", "poll-backwards", "send-order"])
def test_each_anomaly_is_caught(mutate, expected):
    assert kinds(mutate(clean())) == expected


def test_concurrent_sends_may_land_in_either_order():
    # Overlapping in time: no real-time order between them.
    h = [send("a", 0, 1, 1.0, 1.5), send("b", 0, 0, 1.2, 1.3), final([(0, "b"), (1, "a")])]
    assert check(h) == []


def test_an_ack_without_offset_is_checked_where_it_was_read():
    # librdkafka acknowledges an unanswered batch without an offset once a
    # later batch of the same producer succeeds (its "implicit ack").
    a = send("a", 0, None, 1.0, 1.5)
    assert check([a, send("b", 0, 1, 1.1, 1.4), final([(0, "a"), (1, "b")])]) == []
    assert kinds([a, send("b", 0, 1, 1.1, 1.4), final([(1, "b")])]) == ["lost"]
    assert kinds([a, final([(0, "a")], partition=1)]) == ["wrong-offset"]
    # Read where it was, it still takes part in the real-time order check.
    late = send("c", 0, None, 2.0, 2.1)
    assert kinds([send("b", 0, 1, 1.0, 1.1), late, final([(0, "c"), (1, "b")])]) == ["send-order"]


def test_records_below_the_log_start_may_be_gone_and_nothing_else():
    # Retention moved partition 0's log start to 2: a and b are gone.
    h = [send("a", 0, 0, 1.0, 1.1), send("b", 0, 1, 1.2, 1.3), send("c", 0, 2, 1.4, 1.5), final([(2, "c")], log_start=2)]
    assert check(h) == []
    # c is at the log start: it may not be gone.
    assert kinds(h[:-1] + [final([], log_start=2)]) == ["lost"]
    # An ack without an offset below the log start: a later send of the same
    # producer to the same partition lies below it too.
    implicit = send("a", 0, None, 1.0, 1.1)
    assert check([implicit, h[1], h[2], h[3]]) == []
    # Without such a later send, it may not be gone.
    assert kinds([implicit, send("b", 0, 1, 1.2, 1.3, process="p2"), h[2], h[3]]) == ["lost"]


def test_script_prints_anomalies_and_fails(tmp_path):
    path = tmp_path / "history.jsonl"
    bad = clean()[:-1] + [final([], partition=1)]
    path.write_text("".join(json.dumps(op) + "\n" for op in bad))
    r = subprocess.run([sys.executable, os.path.join(HERE, "checker.py"), str(path)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "lost: 'x' acknowledged at 1/0" in r.stdout
    assert json.loads(r.stdout.splitlines()[0])["lost"] == 1


def test_acks_inside_a_no_majority_window_are_caught():
    from chaos import acked_during
    h = [send("a", 0, 0, 1.0, 1.2), send("b", 0, 1, 5.1, 5.3), send("c", 0, None, 5.2, 9.0, outcome="unknown"),
         send("d", 0, 2, 7.5, 8.5)]
    # No majority from 5.0 to 8.0: b was acknowledged inside it; d completed after.
    assert [op["value"] for op in acked_during(h, [(5.0, 8.0)])] == ["b"]
