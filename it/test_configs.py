"""Configs that change while the cluster runs: IncrementalAlterConfigs and
AlterConfigs for topics and brokers (per node and cluster-wide), through
librdkafka's and kafka-python's admin clients, Kafka's own kafka-configs
tool, the admin API and the CLI. A change reaches every node through the
controller and applies without a restart; DescribeConfigs reports each
config's value, source, type and synonyms as Kafka does."""
import json
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewTopic)
from confluent_kafka import KafkaException

from kafka_helpers import wait_for
from test_retention import CLI, create, kafka_tools_classpath, post, produce_batches, watermarks

FAST = ["--log-retention-check-interval-ms", "300"]


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def describe(bootstrap, rtype, name):
    """librdkafka asks for synonyms too."""
    a = admin(bootstrap)
    fs = a.describe_configs([ConfigResource(rtype, name)], request_timeout=30)
    return list(fs.values())[0].result(timeout=30)


def incremental(bootstrap, rtype, name, entries, validate_only=False):
    a = admin(bootstrap)
    res = ConfigResource(rtype, name, incremental_configs=entries)
    fs = a.incremental_alter_configs([res], request_timeout=30, validate_only=validate_only)
    return list(fs.values())[0].result(timeout=30)


def patch(url, body):
    return post(url, body, method="PATCH")


def test_a_topic_retention_change_applies_without_a_restart(node_factory):
    n = node_factory(FAST).start()
    create(n.bootstrap, "live", partitions=1, rf=1)
    produce_batches(n.bootstrap, "live", 10, 10, size=1000)
    assert watermarks(n.bootstrap, "live") == (0, 100)
    c = describe(n.bootstrap, ConfigResource.Type.TOPIC, "live")["retention.bytes"]
    assert (c.value, c.source, c.is_default) == ("-1", ConfigSource.DEFAULT_CONFIG.value, True)
    incremental(n.bootstrap, ConfigResource.Type.TOPIC, "live",
                [ConfigEntry("retention.bytes", "30000", incremental_operation=AlterConfigOpType.SET)])
    c = describe(n.bootstrap, ConfigResource.Type.TOPIC, "live")["retention.bytes"]
    assert (c.value, c.source, c.is_default) == ("30000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False)
    # The leader's next retention check applies it: batches of about 10 KB
    # each, so the log keeps the newest three or four of them.
    wait_for("retention to apply", lambda: watermarks(n.bootstrap, "live")[0] >= 60, timeout=15)
    low, high = watermarks(n.bootstrap, "live")
    assert high == 100 and low % 10 == 0, (low, high)
    # Deleting it goes back to the default: nothing more goes.
    incremental(n.bootstrap, ConfigResource.Type.TOPIC, "live",
                [ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert describe(n.bootstrap, ConfigResource.Type.TOPIC, "live")["retention.bytes"].value == "-1"
    produce_batches(n.bootstrap, "live", 10, 10, size=1000)
    time.sleep(1.5)
    assert watermarks(n.bootstrap, "live") == (low, 200)


def test_alter_configs_replaces_and_bad_changes_are_refused(node):
    a = admin(node.bootstrap)
    a.create_topics([NewTopic("alt", 1, 1, config={"retention.ms": "1000000", "segment.ms": "2000000"})])["alt"].result(timeout=30)
    # AlterConfigs (the legacy API) replaces the whole set.
    res = ConfigResource(ConfigResource.Type.TOPIC, "alt", set_config={"cleanup.policy": "compact,delete"})
    list(a.alter_configs([res], request_timeout=30).values())[0].result(timeout=30)
    cfg = describe(node.bootstrap, ConfigResource.Type.TOPIC, "alt")
    assert cfg["cleanup.policy"].value == "compact,delete"
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value and cfg["retention.ms"].value == "604800000"
    # APPEND and SUBTRACT work on lists.
    incremental(node.bootstrap, ConfigResource.Type.TOPIC, "alt",
                [ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
    assert describe(node.bootstrap, ConfigResource.Type.TOPIC, "alt")["cleanup.policy"].value == "compact"
    # Refused, each with Kafka's error, and nothing changes.
    for entries, code in [
        ([ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)], "INVALID_CONFIG"),
        ([ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)], "INVALID_CONFIG"),
        ([ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)], "INVALID_CONFIG"),
    ]:
        with pytest.raises(KafkaException) as e:
            incremental(node.bootstrap, ConfigResource.Type.TOPIC, "alt", entries)
        assert e.value.args[0].name() == code, e.value
    with pytest.raises(KafkaException) as e:
        incremental(node.bootstrap, ConfigResource.Type.TOPIC, "nope",
                    [ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    assert e.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"
    # validate_only checks without changing anything.
    incremental(node.bootstrap, ConfigResource.Type.TOPIC, "alt",
                [ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.SET)], validate_only=True)
    assert describe(node.bootstrap, ConfigResource.Type.TOPIC, "alt")["retention.ms"].value == "604800000"


def test_cluster_wide_broker_defaults_reach_every_node_and_topic(cluster_factory):
    c = cluster_factory(3, extra_args=FAST).start()
    boot = c.bootstrap
    create(boot, "dflt", partitions=3, rf=3)
    for p in range(3):
        produce_batches(boot, "dflt", 10, 10, size=1000, partition=p)
    # The cluster-wide defaults (kafka-configs --entity-default; librdkafka
    # cannot name them), through the admin API of another node.
    status, body = patch(f"{c.nodes[3].admin}/v1/broker-configs", {"set": {"log.retention.bytes": "30000"}})
    assert status == 200 and body["configs"] == {"log.retention.bytes": "30000"}, body
    # Every partition's leader, on whichever node, applies the new default.
    for p in range(3):
        wait_for(f"retention of dflt-{p}", lambda: watermarks(boot, "dflt", p)[0] >= 60, timeout=20)
    # Each node reports it as the cluster-wide default, with its synonym.
    for n in c.nodes.values():
        cfg = describe(n.bootstrap, ConfigResource.Type.TOPIC, "dflt")["retention.bytes"]
        assert (cfg.value, cfg.source) == ("30000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value), n.node_id
        # (confluent-kafka keeps one synonym per name: the static one, listed last.)
        assert "log.retention.bytes" in cfg.synonyms, cfg.synonyms
    # One node's own setting wins over the cluster's, on that node.
    incremental(boot, ConfigResource.Type.BROKER, "2",
                [ConfigEntry("log.retention.hours", "5", incremental_operation=AlterConfigOpType.SET)])
    cfg = describe(c.nodes[2].bootstrap, ConfigResource.Type.BROKER, "2")
    assert (cfg["log.retention.hours"].value, cfg["log.retention.hours"].source) == ("5", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert cfg["log.retention.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert cfg["broker.id"].is_read_only and cfg["broker.id"].value == "2"
    assert cfg["advertised.listeners"].value == f"PLAINTEXT://{c.nodes[2].bootstrap}"
    t = describe(c.nodes[2].bootstrap, ConfigResource.Type.TOPIC, "dflt")["retention.ms"]
    assert (t.value, t.source) == ("18000000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    # Broker configs that do not change at runtime are refused.
    with pytest.raises(KafkaException) as e:
        incremental(boot, ConfigResource.Type.BROKER, "1", [ConfigEntry("broker.id", "7", incremental_operation=AlterConfigOpType.SET)])
    assert e.value.args[0].name() == "INVALID_CONFIG"


def test_kafka_python_sees_typed_configs(node):
    """kafka-python's admin client reads each config's type (its own tests
    check that they are not all STRING)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KPResource, ConfigResourceType
    create(node.bootstrap, "typed", partitions=1, rf=1)
    a = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=30000)
    try:
        resp = a.describe_configs([KPResource(ConfigResourceType.TOPIC, "typed")], include_synonyms=True, config_filter="all")
        entries = resp["topic"]["typed"]
        types = {name: e["config_type"] for name, e in entries.items()}
        assert (types["retention.ms"], types["max.message.bytes"], types["cleanup.policy"]) == ("LONG", "INT", "LIST"), types
        assert (types["unclean.leader.election.enable"], types["message.timestamp.type"]) == ("BOOLEAN", "STRING"), types
        assert types["min.cleanable.dirty.ratio"] == "DOUBLE", types
        assert entries["retention.ms"]["config_source"] == "DEFAULT_CONFIG", entries["retention.ms"]
        assert {"name": "log.retention.ms", "value": "604800000", "source": "DEFAULT_CONFIG"} in entries["retention.ms"]["synonyms"]
    finally:
        a.close()


def test_kafka_configs_tool(node):
    """kafka-configs.sh: alter and describe a topic's and the brokers' configs."""
    create(node.bootstrap, "tool", partitions=1, rf=1)
    cp = kafka_tools_classpath()

    def configs(*args):
        out = subprocess.run(["java", "-cp", cp, "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", node.bootstrap, *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out
        return out.stdout

    configs("--alter", "--entity-type", "topics", "--entity-name", "tool", "--add-config", "retention.ms=123456,segment.bytes=2000000")
    out = configs("--describe", "--entity-type", "topics", "--entity-name", "tool")
    assert "retention.ms=123456" in out and "segment.bytes=2000000" in out, out
    configs("--alter", "--entity-type", "topics", "--entity-name", "tool", "--delete-config", "retention.ms")
    out = configs("--describe", "--entity-type", "topics", "--entity-name", "tool")
    assert "retention.ms" not in out and "segment.bytes=2000000" in out, out
    configs("--alter", "--entity-type", "brokers", "--entity-default", "--add-config", "log.retention.ms=7200000")
    out = configs("--describe", "--entity-type", "brokers", "--entity-default")
    assert "log.retention.ms=7200000" in out, out
    assert describe(node.bootstrap, ConfigResource.Type.TOPIC, "tool")["retention.ms"].value == "7200000"


def test_admin_api_and_cli_change_configs(node):
    create(node.bootstrap, "api", partitions=1, rf=1)
    status, body = patch(f"{node.admin}/v1/topics/api/configs", {"set": {"retention.ms": "5000"}})
    assert status == 200 and body["configs"] == {"retention.ms": "5000"}, body
    status, body = patch(f"{node.admin}/v1/topics/api/configs", {"set": {"retention.ms": "x"}})
    assert status == 400 and "retention.ms" in body["error"], body
    assert patch(f"{node.admin}/v1/topics/nope/configs", {"set": {"retention.ms": "1"}})[0] == 404
    env = {"CHRONIK_ADMIN": node.admin}
    out = subprocess.run([CLI, "--json", "topic", "alter-config", "api", "--set", "segment.ms=60000", "--delete", "retention.ms"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out
    assert json.loads(out.stdout)["configs"] == {"segment.ms": "60000"}
    out = subprocess.run([CLI, "broker-configs", "--set", "log.retention.bytes=1000000"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0 and "log.retention.bytes" in out.stdout, out
    with urllib.request.urlopen(f"{node.admin}/v1/broker-configs", timeout=10) as r:
        assert json.load(r) == {"cluster": {"log.retention.bytes": "1000000"}, "nodes": {}}
    cfg = describe(node.bootstrap, ConfigResource.Type.TOPIC, "api")
    assert (cfg["segment.ms"].value, cfg["retention.bytes"].value) == ("60000", "1000000")
