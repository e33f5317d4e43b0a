"""The history checker for fault tests (issue 5): Jepsen's Kafka rules,
adapted (../shared/design.md section 7).

A history is a list of operations (dicts), as a workload records them:

  {"op": "send", "process": "p1", "partition": 0, "value": "v17",
   "invoke": 1.20, "complete": 1.25, "outcome": "ok" | "fail" | "unknown",
   "offset": 42}                        # offset only when outcome is ok; None
                                        # when the client acknowledged without one
                                        # (librdkafka's implicit ack: a later
                                        # batch's success proves an earlier,
                                        # unanswered one was stored)
  {"op": "poll", "process": "c1", "partition": 0,
   "invoke": 1.3, "complete": 1.4, "records": [[42, "v17"], [43, "v18"]]}
  {"op": "final", "partition": 0, "records": [[0, "v1"], ...], "log_start": 0}
                                        # a fresh consumer's full read after healing,
                                        # from the partition's log start (retention
                                        # and DeleteRecords move it: what lies below
                                        # may be gone, and nothing else may)

`check(history)` returns a list of anomalies, each {"kind", "detail", "ops"}.
Kinds:
  inconsistent-offset   one (partition, offset) read with two values
  duplicate             one value stored at two offsets
  phantom               a value read that was never sent
  failed-read           a value read whose send definitely failed
  lost                  an acknowledged send missing from the final read
  wrong-offset          an acknowledged send read at another offset than acknowledged
  poll-skip             an assigned consumer's next record skips offsets
  poll-backwards        an assigned consumer's next record goes back
  send-order            a send acknowledged after another completed, in the
                        same partition, got a lower offset

Run as a script on a JSON-lines history: prints a summary and every anomaly,
exits 1 if there is any.
"""
import bisect
import json
import sys
from collections import defaultdict


def _reads(history):
    """(partition, offset, value, op) for every record any consumer read."""
    for op in history:
        if op["op"] in ("poll", "final"):
            for off, value in op["records"]:
                yield op["partition"], off, value, op


def check(history):
    anomalies = []

    def flag(kind, detail, *ops):
        anomalies.append({"kind": kind, "detail": detail, "ops": list(ops)})

    sends = [op for op in history if op["op"] == "send"]
    by_value = {}
    for s in sends:
        by_value[s["value"]] = s

    # 1 and 2: one value per offset, one offset per value.
    at_offset = {}
    offsets_of = defaultdict(dict)
    for part, off, value, op in _reads(history):
        seen = at_offset.get((part, off))
        if seen is None:
            at_offset[(part, off)] = (value, op)
        elif seen[0] != value:
            flag("inconsistent-offset", f"partition {part} offset {off} read as {seen[0]!r} and {value!r}", seen[1], op)
        where = offsets_of[value]
        where.setdefault((part, off), op)
    for value, where in offsets_of.items():
        if len(where) > 1:
            places = sorted(where)
            flag("duplicate", f"{value!r} stored at {places}", *where.values())

    # 3: nothing read that was never sent, or that definitely failed.
    for value, where in offsets_of.items():
        send = by_value.get(value)
        some_read = next(iter(where.values()))
        if send is None:
            flag("phantom", f"{value!r} read at {sorted(where)} but never sent", some_read)
        elif send["outcome"] == "fail":
            flag("failed-read", f"{value!r} read at {sorted(where)} but its send failed", send, some_read)

    # 4: every acknowledged send is in the final read, at its offset, unless
    # it lies below its partition's log start (retention took it).
    implied = {}  # id(send) -> the offset read for an ack that carried none
    finals = [op for op in history if op["op"] == "final"]
    if finals:
        final_at = {}
        log_start = {op["partition"]: op.get("log_start", 0) for op in finals}
        for op in finals:
            for off, value in op["records"]:
                final_at.setdefault(value, []).append((op["partition"], off))
        # An ack without an offset lies below the log start if a later send
        # of the same producer to the same partition does (offsets grow).
        trimmed_after = defaultdict(lambda: float("-inf"))
        for s in sends:
            if s["outcome"] == "ok" and s["offset"] is not None and s["offset"] < log_start.get(s["partition"], 0):
                key = (s["process"], s["partition"])
                trimmed_after[key] = max(trimmed_after[key], s["invoke"])

        def below_log_start(s):
            if s["offset"] is not None:
                return s["offset"] < log_start.get(s["partition"], 0)
            return s["invoke"] < trimmed_after[(s["process"], s["partition"])]
        for s in sends:
            if s["outcome"] != "ok":
                continue
            got = final_at.get(s["value"], [])
            if not got and below_log_start(s):
                continue
            if not got:
                flag("lost", f"{s['value']!r} acknowledged at {s['partition']}/{s['offset']} but not read after healing", s)
            elif s["offset"] is None:
                # Acknowledged without an offset: where it was read stands in
                # for it in the order check below.
                if {p for p, _ in got} != {s["partition"]}:
                    flag("wrong-offset", f"{s['value']!r} acknowledged on partition {s['partition']} but read at {got}", s)
                else:
                    implied[id(s)] = min(off for _, off in got)
            elif (s["partition"], s["offset"]) not in got:
                flag("wrong-offset", f"{s['value']!r} acknowledged at {s['partition']}/{s['offset']} but read at {got}", s)

    # 5: an assigned consumer advances one offset at a time.
    polls = defaultdict(list)
    for op in history:
        if op["op"] == "poll":
            polls[(op["process"], op["partition"])].append(op)
    for (proc, part), ops in polls.items():
        last = None
        for op in sorted(ops, key=lambda o: o["invoke"]):
            for off, _ in op["records"]:
                if last is not None and off > last[0] + 1:
                    flag("poll-skip", f"consumer {proc} on partition {part} went from {last[0]} to {off}", last[1], op)
                elif last is not None and off <= last[0]:
                    flag("poll-backwards", f"consumer {proc} on partition {part} went from {last[0]} back to {off}", last[1], op)
                last = (off, op)

    # 6: real-time order of acknowledged sends within a partition.
    ok = defaultdict(list)
    for s in sends:
        if s["outcome"] == "ok" and s["offset"] is None:
            if id(s) not in implied:
                continue  # not read: flagged above
            s = dict(s, offset=implied[id(s)])
        if s["outcome"] == "ok":
            ok[s["partition"]].append(s)
    for part, ss in ok.items():
        ss.sort(key=lambda s: s["complete"])
        # For each send, the highest offset among sends that completed before it was invoked.
        done_max = []  # (complete time, running max offset, op)
        best = None
        for s in ss:
            if best is None or s["offset"] > best[0]:
                best = (s["offset"], s)
            done_max.append((s["complete"], best))
        times = [t for t, _ in done_max]
        for s in ss:
            i = bisect.bisect_left(times, s["invoke"])
            prior = done_max[i - 1][1] if i > 0 else None
            if prior is not None and prior[1] is not s and s["offset"] <= prior[0]:
                flag("send-order", f"partition {part}: {s['value']!r} sent after {prior[1]['value']!r} "
                     f"was acknowledged at {prior[0]} got offset {s['offset']}", prior[1], s)
    return anomalies


def summary(history, anomalies):
    sends = [op for op in history if op["op"] == "send"]
    kinds = defaultdict(int)
    for a in anomalies:
        kinds[a["kind"]] += 1
    return {
        "operations": len(history),
        "sends": len(sends),
        "acknowledged": sum(1 for s in sends if s["outcome"] == "ok"),
        "lost": kinds["lost"],
        "duplicated": kinds["duplicate"],
        "anomalies": len(anomalies),
        "by_kind": dict(kinds),
    }


def main(path):
    with open(path) as f:
        history = [json.loads(line) for line in f if line.strip()]
    anomalies = check(history)
    print(json.dumps(summary(history, anomalies)))
    for a in anomalies:
        print(f"{a['kind']}: {a['detail']}")
        for op in a["ops"]:
            print(f"    {json.dumps(op)[:300]}")
    return 1 if anomalies else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
