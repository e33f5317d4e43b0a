"""The admin HTTP API and /metrics on the admin port (Kafka port + 200)."""
import json
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
    status, body = get(node.admin + "/metrics")
    assert status == 200
    assert 'chronik_partitions{node_id="1"} 2' in body
    assert 'chronik_kafka_requests_total{node_id="1",api="produce"}' in body
    assert "chronik_storage_flushes_total" in body
