"""Kafka's frameworks on a cluster: a Kafka Streams 4.4 word count
(it/compat/apps/WordCount.java, at-least-once) keeps counting when the
node coordinating its group is killed; its counts may only grow past the
exact ones (reprocessing is what at-least-once allows), never miss a word
or fall short."""
import os
import signal
import sys
import urllib.error

from kafka_helpers import wait_for
from test_retention import create

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat"))
from streams_scenario import Counts, WordCountApp, expected, lines, produce_lines  # noqa: E402


def test_kafka_streams_keeps_counting_when_its_coordinator_dies(cluster_factory, tmp_path):
    c = cluster_factory(3).start()
    for t in ("wc-lines", "wc-counts"):
        create(c.bootstrap, t, rf=3, partitions=3)
    first, second = lines(300, 3), lines(200, 4)
    produce_lines(c.bootstrap, "wc-lines", first)
    counts = Counts(c.bootstrap, "wc-counts", "wc-reader")
    log = open(tmp_path / "streams.log", "w")
    app = WordCountApp(c.bootstrap, "wc-lines", "wc-counts", "wc", str(tmp_path / "state"), replication=3, log=log)
    try:
        app.wait_for("RUNNING")
        counts.until(lambda got: got == expected(first))

        def coordinator():
            try:
                return c.admin_get(1, "/v1/groups/wc", timeout=10)["coordinator"]
            except urllib.error.HTTPError:
                return None
        victim = wait_for("the app's group to commit", coordinator)
        c.nodes[victim].stop(signal.SIGKILL)
        produce_lines(c.live_bootstrap(), "wc-lines", second)
        want = expected(first + second)
        got = counts.until(lambda got: got.keys() == want.keys() and all(got[w] >= n for w, n in want.items()), timeout=180)
        assert not app.said("DEAD"), app.lines[-5:]
        assert sum(got.values()) <= 2 * sum(want.values()), f"counted far past the input: {got} vs {want}"
        c.nodes[victim].start()
        c.wait_ready()
        app.stop()
    finally:
        if app.proc.poll() is None:
            app.proc.kill()
        counts.close()
