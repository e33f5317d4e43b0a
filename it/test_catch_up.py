"""A follower that was down while a gigabyte of 1 MiB batches was written
catches up (replication is bounded in bytes per request, not only in
entries), and a consumer asking for 2 GiB of that partition gets a response
capped by fetch_max_bytes while the node's memory stays bounded."""
import os
import signal
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import replica_digests, wait_for
from test_hostile import fetch_answer, metric, rss_mib

TOPIC = "big"
MESSAGE_BYTES = 1 << 20
TOTAL_BYTES = int(os.environ.get("CATCH_UP_BYTES", 1 << 30))


def test_follower_catches_up_a_gigabyte_and_a_2_gib_fetch_is_capped(cluster_factory):
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 3, config={"max.message.bytes": str(2 << 20)})])[TOPIC].result(timeout=30)
    leader = wait_for("a leader", lambda: c.leaders(TOPIC).get(0))
    follower = next(i for i in c.nodes if i != leader)
    c.nodes[follower].stop(signal.SIGKILL)

    count = TOTAL_BYTES // MESSAGE_BYTES
    value = os.urandom(MESSAGE_BYTES)
    errors = []
    p = Producer({"bootstrap.servers": c.live_bootstrap(), "acks": "all", "message.max.bytes": 2 << 20,
                  "linger.ms": 0, "queue.buffering.max.kbytes": 256 * 1024})
    started = time.time()
    for _ in range(count):
        while True:
            try:
                p.produce(TOPIC, value=value, partition=0, on_delivery=lambda err, m: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(300) == 0
    assert not errors, errors[:3]
    took = time.time() - started
    print(f"produced {count} x 1 MiB with node {follower} down in {took:.1f} s ({count / took:.0f} MiB/s)")

    c.nodes[follower].start()
    started = time.time()

    def caught_up():
        d = replica_digests(c, TOPIC, 1)[0]
        return len(d) == 3 and len(set(d.values())) == 1 and d

    digests = wait_for("the follower to be byte-identical", caught_up, timeout=600, interval=1)
    print(f"node {follower} caught up {count} MiB in {time.time() - started:.1f} s; replicas {digests}")
    hits = sum(metric(n, "chronik_limit_hits_total", limit="replication_append_bytes_max") for n in c.nodes.values())
    assert hits > 0, "the catch-up went in requests bounded by replication_append_bytes_max"

    # Under the catch-up's load the leadership may have moved: fetch from
    # whoever leads now.
    now_leading = wait_for("a leader", lambda: c.leaders(TOPIC).get(0))
    if now_leading != leader:
        print(f"leadership moved from node {leader} to node {now_leading} during the catch-up")
        for i, node in c.nodes.items():
            print(f"node {i}: " + " | ".join(l[-160:] for l in node.log().splitlines() if "now leading" in l or "campaign" in l)[-1500:])
    n = c.nodes[now_leading]
    rss_before = rss_mib(n)
    peak = rss_before
    got = 0
    fetched = 0
    for _ in range(10):
        if fetched == 3:
            break
        err, got = fetch_answer(n, TOPIC, 0, 0x7FFFFFFF, timeout=120)  # 2 GiB, the most Kafka can ask
        if err in (5, 6):  # the leadership moved meanwhile
            n = c.nodes[wait_for("a leader", lambda: c.leaders(TOPIC).get(0))]
            rss_before = peak = rss_mib(n)
            continue
        assert err == 0, err
        fetched += 1
        peak = max(peak, rss_mib(n))
    assert fetched == 3, "the leadership kept moving"
    print(f"2 GiB fetch of a {count} MiB partition answered {got / 2**20:.1f} MiB; leader RSS {rss_before:.0f} -> {peak:.0f} MiB")
    assert got <= (55 << 20) + MESSAGE_BYTES + 4096, "fetch_max_bytes (55 MiB) caps the response"
    assert got >= 50 << 20
    assert peak - rss_before < 400, f"a capped fetch grew RSS by {peak - rss_before:.0f} MiB"
