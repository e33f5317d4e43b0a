"""The admin HTTP API and /metrics on the admin port (Kafka port + 200)."""
import json
import time
import urllib.error
import urllib.request

from kafka_helpers import create_topic, produce


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_admin_endpoints_and_metrics(node):
    create_topic(node.bootstrap, "adm", partitions=2)
    produce(node.bootstrap, "adm", [(b"k", b"v")], acks="all")
    status, body = get(node.admin + "/v1/health/live")
    assert status == 200
    status, body = get(node.admin + "/v1/health/ready")
    assert status == 200 and json.loads(body)["controller"] == 1
    status, body = get(node.admin + "/v1/cluster")
    assert status == 200 and json.loads(body)["nodes"][0]["port"] == node.port
    status, body = get(node.admin + "/v1/topics")
    topics = {t["name"]: t for t in json.loads(body)}
    assert [p["leader"] for p in topics["adm"]["partitions"]] == [1, 1]
    status, body = get(node.admin + "/v1/no-such-thing")
    assert status == 404 and "error" in json.loads(body)
    acked = produce(node.bootstrap, "adm", [(b"k", b"v%d" % i) for i in range(3)], acks="all")
    part = next(iter(acked))[0]
    status, body = get(node.admin + "/v1/replicas")
    views = {(r["topic"], r["partition"]): r for r in json.loads(body)}
    adm0 = views[("adm", part)]
    assert adm0["applied_index"] == adm0["committed_index"] == adm0["last_log_index"] >= 2, adm0
    status, body = get(node.admin + f"/v1/replicas/adm/{part}/batches?from=0&limit=10")
    batches = json.loads(body)["batches"]
    assert status == 200 and batches[-1]["last_offset"] + 1 == adm0["high_watermark"], batches
    assert [b["base_offset"] for b in batches] == sorted(b["base_offset"] for b in batches)
    assert all(b["log_index"] <= adm0["applied_index"] and b["bytes"] > 0 for b in batches)
    status, body = get(node.admin + f"/v1/replicas/adm/{part}/batches?from={batches[-1]['base_offset']}")
    assert json.loads(body)["batches"] == batches[-1:]
    status, body = get(node.admin + "/metrics")
    assert status == 200
    assert 'chronik_partitions{node_id="1"} 2' in body
    assert 'chronik_kafka_requests_total{node_id="1",api="produce"}' in body
    assert "chronik_storage_flushes_total" in body


def call(method, url, body=None, headers=None):
    data = body.encode() if isinstance(body, str) else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_topics_and_groups_through_the_admin_api(node):
    a = node.admin
    status, t = call("POST", a + "/v1/topics", {"name": "api-made", "partitions": 3, "configs": {"retention.ms": "60000"}})
    assert status == 201 and len(t["partitions"]) == 3 and t["configs"]["retention.ms"] == "60000"
    acked = produce(node.bootstrap, "api-made", [(b"k%d" % i, b"v") for i in range(30)], acks="all")
    status, t = call("GET", a + "/v1/topics/api-made")
    assert status == 200
    ends = {p["partition"]: p["high_watermark"] for p in t["partitions"]}
    assert sum(ends.values()) == len(acked) and all(p["log_start_offset"] == 0 for p in t["partitions"])
    assert all(p["log_end_offset"] == p["high_watermark"] and p["leader"] == 1 for p in t["partitions"])

    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "api-group"})
    c.commit(offsets=[TopicPartition("api-made", 0, 1)], asynchronous=False)
    c.close()
    status, groups = call("GET", a + "/v1/groups")
    assert status == 200 and [g["group"] for g in groups] == ["api-group"]
    status, g = call("GET", a + "/v1/groups/api-group")
    assert status == 200 and g["partitions"][0]["committed_offset"] == 1 and g["lag"] == ends[0] - 1

    status, _ = call("DELETE", a + "/v1/topics/api-made")
    assert status == 204
    assert call("GET", a + "/v1/topics/api-made")[0] == 404


def test_bad_admin_requests_get_a_json_4xx(node):
    a = node.admin
    create_topic(node.bootstrap, "exists")
    cases = [
        ("POST", "/v1/topics", "{not json", 400),
        ("POST", "/v1/topics", {"name": "x", "surprise": 1}, 400),       # unknown field
        ("POST", "/v1/topics", {"partitions": 3}, 400),                 # name missing
        ("POST", "/v1/topics", {"name": "bad name"}, 400),
        ("POST", "/v1/topics", {"name": "x" * 250}, 400),
        ("POST", "/v1/topics", {"name": "p0", "partitions": 0}, 400),
        ("POST", "/v1/topics", {"name": "rf", "replication_factor": 3}, 400),  # one node
        ("POST", "/v1/topics", {"name": "cfg", "configs": {"retention.ms": "soon"}}, 400),
        ("POST", "/v1/topics", {"name": "cfg", "configs": {"no.such.config": "1"}}, 400),
        ("POST", "/v1/topics", {"name": "exists"}, 409),
        ("GET", "/v1/topics/missing", None, 404),
        ("DELETE", "/v1/topics/missing", None, 404),
        ("DELETE", "/v1/topics/__consumer_offsets", None, 400),
        ("GET", "/v1/groups/never-seen", None, 404),
        ("GET", "/v1/replicas/exists/not-a-number/digest", None, 400),
        ("GET", "/v1/replicas/missing/0/digest", None, 404),
        ("GET", "/v1/replicas/exists/0/batches?from=-1", None, 400),
        ("GET", "/v1/replicas/exists/0/batches?limit=0", None, 400),
        ("GET", "/v1/replicas/exists/0/batches?limit=many", None, 400),
        ("GET", "/v1/replicas/exists/0/batches?surprise=1", None, 400),
        ("GET", "/v1/replicas/exists/x/batches", None, 400),
        ("GET", "/v1/replicas/missing/0/batches", None, 404),
        ("PUT", "/v1/topics", {"name": "x"}, 405),
        ("GET", "/v2/anything", None, 404),
    ]
    for method, path, body, want in cases:
        status, reply = call(method, a + path, body)
        assert status == want and isinstance(reply.get("error"), str) and reply["error"], (method, path, body, status, reply)
    assert call("GET", a + "/v1/health/live")[0] == 200, "the node is still up"


def test_openapi_document_matches_the_server(node):
    """schemathesis generates requests from /v1/openapi.json and checks every
    answer against it: no 5xx, documented status codes, content types and
    response schemas."""
    import subprocess
    create_topic(node.bootstrap, "openapi", partitions=2)
    r = subprocess.run(["schemathesis", "run", node.admin + "/v1/openapi.json", "--url", node.admin,
                        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                        "--max-examples", "30", "--phases", "examples,coverage,fuzzing,stateful", "--no-color",
                        # Generated requests may grow a topic to 10,000 partitions and then delete it:
                        # dropping that many Raft groups takes seconds on 2 cores (3.8 s for 6,000 when
                        # idle), more than schemathesis' default 10 s while it fuzzes other calls.
                        "--request-timeout", "60"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_partition_leadership_moves_on_request(cluster_factory):
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka_helpers import wait_for
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("moving", 1, 3)])["moving"].result(30)
    leader = wait_for("a leader", lambda: c.leaders("moving").get(0))
    status, nodes = call("GET", c.nodes[1].admin + "/v1/nodes")
    assert status == 200 and [n["id"] for n in nodes] == [1, 2, 3] and all(n["alive"] for n in nodes), nodes
    assert sum(n["leaders"] for n in nodes) == 1 and sum(n["controller"] for n in nodes) == 1
    assert call("GET", c.nodes[1].admin + f"/v1/nodes/{leader}")[1]["leaders"] == 1
    assert call("GET", c.nodes[1].admin + "/v1/nodes/nine")[0] == 400
    assert call("GET", c.nodes[1].admin + "/v1/nodes/9")[0] == 404
    target = next(i for i in c.nodes if i != leader)
    other = next(i for i in c.nodes if i not in (leader, target))
    url = "/v1/topics/moving/partitions/0/leader"
    # A request another node already passed on is answered where it lands:
    # 421, naming the leader (no forwarding loops).
    status, reply = call("POST", c.nodes[other].admin + url, {"node": target}, headers={"x-chronik-forwarded-by": "9"})
    assert status == 421 and f"node Some({leader})" in reply["error"], reply
    # Bad requests are refused wherever they are sent.
    assert call("POST", c.nodes[leader].admin + url, {"node": 99})[0] == 400
    assert call("POST", c.nodes[other].admin + url, {"node": 99})[0] == 400
    assert call("POST", c.nodes[other].admin + url, "{oops")[0] == 400
    # Asked of a node that does not lead it, the node asks the leader.
    t = time.time()
    status, reply = call("POST", c.nodes[other].admin + url, {"node": target})
    assert status == 200 and reply["leader"] == target, reply
    print(f"leadership moved {leader} -> {target} in {time.time() - t:.2f}s")
    wait_for("every node to see the new leader", lambda: c.leaders("moving").get(0) == target)
    acked = produce(c.bootstrap, "moving", [(b"k", b"after-move")], acks="all")
    assert list(acked) == [(0, 0)]


def test_groups_are_listed_and_described_from_any_node(cluster_factory):
    """Consumer groups are coordinated by different nodes; any node's admin
    API (and the CLI pointed at it) lists them all and describes each one."""
    from confluent_kafka import Consumer, TopicPartition
    from kafka_helpers import wait_for
    from test_cli import cli
    from confluent_kafka.admin import AdminClient, NewTopic
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("grouped", 2, 3)])["grouped"].result(30)
    produce(c.bootstrap, "grouped", [(b"k%d" % i, b"v") for i in range(40)], acks="all")
    names = [f"ops-{i}" for i in range(8)]
    for i, g in enumerate(names):
        consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": g, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition("grouped", 0, i), TopicPartition("grouped", 1, 1)], asynchronous=False)
        finally:
            consumer.close()
    coordinators = {}
    for g in names:
        status, d = call("GET", c.nodes[1].admin + f"/v1/groups/{g}")
        assert status == 200 and d["group"] == g, (g, status, d)
        coordinators[g] = d["coordinator"]
    assert len(set(coordinators.values())) > 1, f"every group on one node, nothing forwarded: {coordinators}"
    for i in c.nodes:
        status, listed = call("GET", c.nodes[i].admin + "/v1/groups")
        assert status == 200, listed
        by_name = {d["group"]: d for d in listed}
        assert sorted(by_name) == names, (i, sorted(by_name))
        for k, g in enumerate(names):
            d = by_name[g]
            assert d["coordinator"] == coordinators[g]
            ends = {p["partition"]: p["high_watermark"] for p in d["partitions"]}
            commits = {p["partition"]: p["committed_offset"] for p in d["partitions"]}
            assert sum(ends.values()) == 40 and commits == {0: k, 1: 1}, d
            assert d["lag"] == ends[0] - k + ends[1] - 1, d
    r = cli(c.nodes[2], "groups")
    assert r.returncode == 0 and all(g in r.stdout for g in names), r
    assert call("GET", c.nodes[3].admin + "/v1/groups/no-such-group")[0] == 404
