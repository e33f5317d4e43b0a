"""The ACL matrix: each Kafka API a client reaches, as one principal, first
without the ACL Kafka's authorizer asks for (the error Kafka answers), then
with it (success). Real client: confluent-kafka (librdkafka) over
SASL_PLAINTEXT with SCRAM-SHA-512; setup as the super user."""
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType,
                                   ConfigEntry, ConfigResource, NewPartitions, NewTopic, OffsetSpec, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)

from kafka_helpers import wait_for
from security_helpers import ADMIN_PASSWORD, ADMIN_USER, add_user, admin_call, free_port, make_pki, sasl_conf, secure_args

USER, PASSWORD = "matrix", "matrix-secret"
PRINCIPAL = f"User:{USER}"
TOPIC_AUTH = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_AUTH = KafkaError.GROUP_AUTHORIZATION_FAILED
CLUSTER_AUTH = KafkaError.CLUSTER_AUTHORIZATION_FAILED


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import conftest
    base = tmp_path_factory.mktemp("matrix")
    pki = make_pki(str(base / "pki"), clients=())
    n = conftest.Node(str(base / "data"))
    n.ports = [n.port, free_port(), free_port()]
    n.extra_args = secure_args(pki, n.ports, extra=["--group-initial-rebalance-delay-ms", "0"])
    n.start()
    try:
        wait_for("controller", lambda: admin_call(n.admin, "GET", "/v1/health/ready")[0] == 200)
        add_user(n.admin, ADMIN_USER, ADMIN_PASSWORD)
        add_user(n.admin, USER, PASSWORD)
        boot = f"127.0.0.1:{n.ports[1]}"
        env = {"node": n, "admin": AdminClient(sasl_conf(boot, ADMIN_USER, ADMIN_PASSWORD)),
               "admin_conf": sasl_conf(boot, ADMIN_USER, ADMIN_PASSWORD), "conf": sasl_conf(boot, USER, PASSWORD)}
        env["user"] = AdminClient(env["conf"])
        yield env
    finally:
        n.stop()


def code(f, timeout=30):
    """0 if the future succeeds, else its Kafka error code."""
    try:
        r = f.result(timeout)
        return getattr(r, "error", None).code() if getattr(r, "error", None) else 0
    except KafkaException as e:
        return e.args[0].code()


def grant(env, grants):
    for rt, name, op, pattern in grants:
        status, out = admin_call(env["node"].admin, "POST", "/v1/acls", {"principal": PRINCIPAL, "resource_type": rt, "name": name,
                                                                         "operation": op, "pattern": pattern})
        assert status == 200, out


def revoke_all(env):
    status, out = admin_call(env["node"].admin, "DELETE", "/v1/acls", {"principal": PRINCIPAL})
    assert status == 200, out


def setup_topic(env, partitions=1):
    """A topic with one record, made by the super user."""
    t = f"m-{uuid.uuid4().hex[:10]}"
    env["admin"].create_topics([NewTopic(t, partitions, 1)])[t].result(30)
    p = Producer(env["admin_conf"])
    p.produce(t, b"first")
    assert p.flush(15) == 0
    return t


def describe_acls_kafka_python(env):
    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter
    from kafka.admin import ResourceType as KResourceType, ACLResourcePatternType
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as KafkaPythonError
    a = KafkaAdminClient(bootstrap_servers=env["conf"]["bootstrap.servers"], security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                         sasl_plain_username=USER, sasl_plain_password=PASSWORD)
    try:
        f = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                      resource_pattern=ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY))
        try:
            _acls, error = a.describe_acls(f)
            return error.errno
        except KafkaPythonError as e:
            return e.errno
    finally:
        a.close()


def setup_group(env, topic):
    """A group with a committed offset on `topic`, made by the super user."""
    g = f"mg-{uuid.uuid4().hex[:8]}"
    code(env["admin"].alter_consumer_group_offsets([ConsumerGroupTopicPartitions(g, [TopicPartition(topic, 0, 0)])])[g])
    return g


def produce(env, topic, idempotent=False):
    """0, or the first error the producer reports (a fatal one for an
    idempotent producer refused its producer id)."""
    errs = []
    p = Producer({**env["conf"], "enable.idempotence": idempotent, "message.timeout.ms": 10000, "retries": 0 if not idempotent else 5,
                  "error_cb": lambda e: errs.append(e)})
    try:
        p.produce(topic, b"v", on_delivery=lambda err, msg: errs.append(err))
        p.flush(15)
    except (KafkaException, SystemError) as e:
        # A fatal error (the producer id refused) is raised from the client's
        # callbacks (confluent-kafka wraps it in a SystemError).
        cause = e if isinstance(e, KafkaException) else (e.__cause__ or e.__context__)
        errs.append(cause.args[0])
    # A broker's error (positive) says more than the local ones it causes
    # (messages purged when the producer id is refused).
    codes = sorted((e.code() for e in errs if e is not None), key=lambda c: c < 0)
    return codes[0] if codes else 0


def consume(env, topic, group):
    c = Consumer({**env["conf"], "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return m.error().code()
            return 0
        return "timeout"
    finally:
        c.close()


def metadata(env, topic):
    md = env["user"].list_topics(topic, timeout=20)
    t = md.topics.get(topic)
    return t.error.code() if t is not None and t.error else 0


# (name, run(env, topic, group) -> code, the code without the ACL, the ACLs
# that allow it: (resource type, name ("{t}" the topic, "{g}" the group), operation, pattern)).
CASES = [
    ("Metadata", lambda e, t, g: metadata(e, t), TOPIC_AUTH, [("TOPIC", "{t}", "DESCRIBE", "LITERAL")]),
    ("Produce", lambda e, t, g: produce(e, t), TOPIC_AUTH, [("TOPIC", "{t}", "WRITE", "LITERAL")]),
    ("InitProducerId (idempotent)", lambda e, t, g: produce(e, t, idempotent=True), CLUSTER_AUTH,
     [("CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE", "LITERAL"), ("TOPIC", "{t}", "WRITE", "LITERAL")], [("TOPIC", "{t}", "DESCRIBE", "LITERAL")]),
    ("Fetch", lambda e, t, g: consume(e, t, g), TOPIC_AUTH, [("TOPIC", "{t}", "READ", "LITERAL")], [("GROUP", "{g}", "READ", "LITERAL")]),
    ("Fetch's group (JoinGroup)", lambda e, t, g: consume(e, t, g), GROUP_AUTH, [("GROUP", "mg-", "READ", "PREFIXED")], [("TOPIC", "{t}", "READ", "LITERAL")]),
    # librdkafka looks the leader up first: without DESCRIBE, Metadata refuses and it reports _NOENT.
    ("ListOffsets", lambda e, t, g: code(e["user"].list_offsets({TopicPartition(t, 0): OffsetSpec.latest()})[TopicPartition(t, 0)]),
     KafkaError._NOENT, [("TOPIC", "{t}", "DESCRIBE", "LITERAL")]),
    ("CreateTopics", lambda e, t, g: code(e["user"].create_topics([NewTopic(t + "-new", 1, 1)])[t + "-new"]), TOPIC_AUTH,
     [("CLUSTER", "kafka-cluster", "CREATE", "LITERAL")]),
    ("DeleteTopics", lambda e, t, g: code(e["user"].delete_topics([t])[t]), TOPIC_AUTH, [("TOPIC", "{t}", "DELETE", "LITERAL")]),
    ("CreatePartitions", lambda e, t, g: code(e["user"].create_partitions([NewPartitions(t, 2)])[t]), TOPIC_AUTH,
     [("TOPIC", "{t}", "ALTER", "LITERAL")]),
    ("DescribeConfigs (topic)", lambda e, t, g: code(e["user"].describe_configs([ConfigResource("TOPIC", t)])[ConfigResource("TOPIC", t)]),
     TOPIC_AUTH, [("TOPIC", "{t}", "DESCRIBE_CONFIGS", "LITERAL")]),
    ("IncrementalAlterConfigs (topic)", lambda e, t, g: code(list(e["user"].incremental_alter_configs([ConfigResource(
        "TOPIC", t, incremental_configs=[ConfigEntry("retention.ms", "100000", incremental_operation=AlterConfigOpType.SET)])]).values())[0]),
     TOPIC_AUTH, [("TOPIC", "{t}", "ALTER_CONFIGS", "LITERAL")]),
    ("DescribeConfigs (broker)", lambda e, t, g: code(e["user"].describe_configs([ConfigResource("BROKER", "1")])[ConfigResource("BROKER", "1")]),
     CLUSTER_AUTH, [("CLUSTER", "kafka-cluster", "DESCRIBE_CONFIGS", "LITERAL")]),
    ("DescribeGroups", lambda e, t, g: code(e["user"].describe_consumer_groups([g])[g]), GROUP_AUTH, [("GROUP", "{g}", "DESCRIBE", "LITERAL")]),
    ("OffsetFetch", lambda e, t, g: code(e["user"].list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g]), GROUP_AUTH,
     [("GROUP", "{g}", "DESCRIBE", "LITERAL")]),
    ("OffsetCommit", lambda e, t, g: code(e["user"].alter_consumer_group_offsets([ConsumerGroupTopicPartitions(g, [TopicPartition(t, 0, 0)])])[g]),
     GROUP_AUTH, [("GROUP", "{g}", "READ", "LITERAL"), ("TOPIC", "{t}", "READ", "LITERAL")]),
    ("DeleteGroups", lambda e, t, g: code(e["user"].delete_consumer_groups([g])[g]), GROUP_AUTH, [("GROUP", "{g}", "DELETE", "LITERAL")]),
    ("DeleteRecords", lambda e, t, g: code(e["user"].delete_records([TopicPartition(t, 0, 0)])[TopicPartition(t, 0, 0)]), TOPIC_AUTH,
     [("TOPIC", "{t}", "DELETE", "LITERAL")], [("TOPIC", "{t}", "DESCRIBE", "LITERAL")]),
    ("CreateAcls", lambda e, t, g: code(list(e["user"].create_acls([AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL,
                                                                                 "User:other", "*", AclOperation.READ,
                                                                                 AclPermissionType.ALLOW)]).values())[0]),
     CLUSTER_AUTH, [("CLUSTER", "kafka-cluster", "ALTER", "LITERAL")]),
    # librdkafka drops DescribeAcls' error code (an empty list either way): kafka-python asks.
    ("DescribeAcls", lambda e, t, g: describe_acls_kafka_python(e), CLUSTER_AUTH, [("CLUSTER", "kafka-cluster", "DESCRIBE", "LITERAL")]),
    ("DescribeUserScramCredentials", lambda e, t, g: code(e["user"].describe_user_scram_credentials([USER])[USER]), CLUSTER_AUTH,
     [("CLUSTER", "kafka-cluster", "DESCRIBE", "LITERAL")]),
    ("AlterUserScramCredentials", lambda e, t, g: code(e["user"].alter_user_scram_credentials([UserScramCredentialUpsertion(
        t, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")])[t]), CLUSTER_AUTH, [("CLUSTER", "kafka-cluster", "ALTER", "LITERAL")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_acl_matrix(env, case):
    """Given the case's other ACLs (its 5th element), the API is refused
    without its own and allowed with them."""
    name, run, denied, grants, given = (*case, [])[:5]
    revoke_all(env)
    topic = setup_topic(env)
    group = setup_group(env, topic)
    fill = lambda acls: [(rt, n.format(t=topic, g=group), op, pattern) for rt, n, op, pattern in acls]
    grant(env, fill(given))
    # A fresh client each time: librdkafka remembers a topic it was refused.
    env["user"] = AdminClient(env["conf"])
    assert run(env, topic, group) == denied, f"{name} without its ACL"
    grant(env, fill(grants))
    env["user"] = AdminClient(env["conf"])
    assert run(env, topic, group) == 0, f"{name} with {grants}"
    revoke_all(env)


def test_denied_topics_are_hidden_and_describe_cluster_is_open(env):
    revoke_all(env)
    topic = setup_topic(env)
    other = setup_topic(env)
    grant(env, [("TOPIC", topic, "READ", "LITERAL")])
    seen = env["user"].list_topics(timeout=20).topics
    assert topic in seen and other not in seen
    assert code(env["user"].describe_cluster()) == 0
    # ListGroups lists only the groups the principal may DESCRIBE.
    g_mine, g_other = setup_group(env, topic), setup_group(env, topic)
    grant(env, [("GROUP", g_mine, "DESCRIBE", "LITERAL")])
    listed = {g.group_id for g in env["user"].list_consumer_groups().result(30).valid}
    assert g_mine in listed and g_other not in listed
    revoke_all(env)


def test_deny_wins_and_super_user_passes(env):
    revoke_all(env)
    topic = setup_topic(env)
    grant(env, [("TOPIC", "m-", "ALL", "PREFIXED")])
    assert produce(env, topic) == 0
    status, out = admin_call(env["node"].admin, "POST", "/v1/acls", {"principal": PRINCIPAL, "resource_type": "TOPIC", "name": topic,
                                                                     "operation": "WRITE", "permission": "DENY"})
    assert status == 200, out
    assert produce(env, topic) == TOPIC_AUTH
    # The super user is never denied.
    admin_errs = []
    p = Producer({**sasl_conf(f"127.0.0.1:{env['node'].ports[1]}", ADMIN_USER, ADMIN_PASSWORD), "message.timeout.ms": 10000})
    p.produce(topic, b"x", on_delivery=lambda err, msg: admin_errs.append(err))
    p.flush(15)
    assert admin_errs == [None]
    revoke_all(env)
