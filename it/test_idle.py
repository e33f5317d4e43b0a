"""An idle partition costs its leader no heartbeats, and a read that finds
its lease lapsed renews it on the spot instead of refusing."""
import time

from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import produce, wait_for
from test_hostile import fetch_answer, metric


def heartbeats(c):
    return sum(metric(n, "raft_heartbeats_total") for n in c.nodes.values() if n.alive())


def test_an_idle_partition_is_not_heartbeated_and_still_serves_a_fetch(cluster_factory):
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("quiet", 1, 3)])["quiet"].result(timeout=30)
    leader = wait_for("a leader", lambda: c.leaders("quiet").get(0))
    produce(c.bootstrap, "quiet", [(b"k", b"v%d" % i) for i in range(5)], acks="all")
    # Followers hear the last commit index once; then the group is quiet and
    # the leader's lease (election_timeout_max, 800 ms) runs out.
    time.sleep(2)
    before = heartbeats(c)
    time.sleep(3)
    # A heartbeat every 300 ms would be 10 in this window.
    assert heartbeats(c) - before <= 2
    err, records_bytes = fetch_answer(c.nodes[leader], "quiet", 0, 1 << 20)
    assert err == 0, f"fetch on a lapsed lease answered error {err}"
    assert records_bytes > 0, "the fetch returned no records"
