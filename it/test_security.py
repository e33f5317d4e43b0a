"""Security, end to end against the real binary with real clients
(confluent-kafka/librdkafka, Kafka's own tools in make compat):
listeners (SASL_SSL, SASL_PLAINTEXT, SSL with client certificates), SCRAM
and PLAIN, ACLs, the cluster port's secret and the admin API's tokens."""
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from kafka_helpers import wait_for
from security_helpers import (ADMIN_PASSWORD, ADMIN_TOKEN, ADMIN_USER, CLUSTER_SECRET, READ_TOKEN, add_user, admin_call,
                              free_port, make_pki, sasl_conf, secure_args)


@pytest.fixture
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")), clients=("alice",))


@pytest.fixture
def secure_node(node_factory, pki):
    n = node_factory()
    n.ports = [n.port, free_port(), free_port()]
    n.extra_args = secure_args(pki, n.ports)
    n.start()
    wait_for("controller", lambda: admin_call(n.admin, "GET", "/v1/health/ready")[0] == 200)
    add_user(n.admin, ADMIN_USER, ADMIN_PASSWORD)
    return n


def ssl_boot(n):
    return f"localhost:{n.ports[0]}"


def admin_client(n, pki, user=ADMIN_USER, password=ADMIN_PASSWORD):
    return AdminClient(sasl_conf(ssl_boot(n), user, password, ca=pki["ca"]))


def produce(conf, topic, values, timeout=20):
    """Delivery results: the error code of each value (0 = written)."""
    results = []
    p = Producer({**conf, "message.timeout.ms": int(timeout * 1000), "retries": 0})
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, msg: results.append(err.code() if err else 0))
    p.flush(timeout + 5)
    return results


def consume(conf, topic, group, want, timeout=30):
    """Values read, or the first error code."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.time() + timeout
    try:
        while len(got) < want and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return m.error().code()
            got.append(m.value().decode())
        if got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def grant(n, principal, operation, resource_type, name, pattern="LITERAL"):
    status, out = admin_call(n.admin, "POST", "/v1/acls", {"principal": principal, "operation": operation,
                                                           "resource_type": resource_type, "name": name, "pattern": pattern})
    assert status == 200, out


def test_scram_plain_and_client_certificates_with_acls(secure_node, pki):
    n = secure_node
    add_user(n.admin, "alice", "alice-secret", mechanisms=["SCRAM-SHA-256"])
    add_user(n.admin, "bob", "bob-secret")
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    admin = admin_client(n, pki)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)

    alice = sasl_conf(ssl_boot(n), "alice", "alice-secret", "SCRAM-SHA-256", ca=pki["ca"])
    # Not even DESCRIBE: Metadata refuses the topic.
    assert produce(alice, topic, ["denied"]) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # READ (which implies DESCRIBE) but no WRITE: Produce itself refuses.
    grant(n, "User:alice", "READ", "TOPIC", topic)
    assert produce(alice, topic, ["denied"]) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    # Granted through the Kafka API (CreateAcls), by the super user.
    acl = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    admin.create_acls([acl])[acl].result(30)
    assert produce(alice, topic, ["a1", "a2"]) == [0, 0]

    # Reading needs READ on the group too.
    group = f"g-{topic}"
    assert consume(alice, topic, group, 2) == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(n, "User:alice", "READ", "GROUP", "g-", pattern="PREFIXED")
    assert consume(alice, topic, group, 2) == ["a1", "a2"]

    # bob (PLAIN over SASL_PLAINTEXT) may see no topic: it is left out.
    bob = AdminClient(sasl_conf(f"localhost:{n.ports[1]}", "bob", "bob-secret", "PLAIN"))
    assert topic not in bob.list_topics(timeout=20).topics
    assert topic in admin.list_topics(timeout=20).topics

    # A client certificate for CN=alice is User:alice (mapping rule).
    tls_alice = {"bootstrap.servers": f"localhost:{n.ports[2]}", "security.protocol": "SSL", "ssl.ca.location": pki["ca"],
                 "ssl.certificate.location": os.path.join(pki["dir"], "alice.pem"), "ssl.key.location": os.path.join(pki["dir"], "alice.key")}
    assert produce(tls_alice, topic, ["a3"]) == [0]
    # Without one, User:ANONYMOUS, who may not write.
    anonymous = {"bootstrap.servers": f"localhost:{n.ports[2]}", "security.protocol": "SSL", "ssl.ca.location": pki["ca"]}
    assert produce(anonymous, topic, ["x"]) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    described = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                                     AclOperation.ANY, AclPermissionType.ANY)).result(30)
    assert {(b.name, b.operation) for b in described} == {(topic, AclOperation.WRITE), (topic, AclOperation.READ), ("g-", AclOperation.READ)}
    m = urllib.request.urlopen(n.admin + "/metrics", timeout=5).read().decode()
    assert 'chronik_authentications_total{node_id="1",mechanism="SCRAM-SHA-256",result="ok"}' in m
    assert 'mechanism="SSL",result="ok"' in m
    denied = [line for line in m.splitlines() if line.startswith("chronik_authorization_denied")]
    for api, rt in (("metadata", "TOPIC"), ("produce", "TOPIC"), ("find_coordinator", "GROUP")):
        assert any(f'api="{api}",resource_type="{rt}"' in line for line in denied), denied


def test_wrong_password_unknown_user_and_wrong_protocol_fail_cleanly(secure_node, pki):
    n = secure_node
    add_user(n.admin, "carol", "carol-secret")
    for user, password, mech in (("carol", "Wr0ngPa55", "SCRAM-SHA-512"), ("nobody", "x", "SCRAM-SHA-256"), ("carol", "Wr0ngPa55", "PLAIN")):
        errors = []
        p = Producer({**sasl_conf(ssl_boot(n), user, password, mech, ca=pki["ca"]), "error_cb": lambda e: errors.append(e)})
        deadline = time.time() + 20
        while not errors and time.time() < deadline:
            p.poll(0.2)
        assert errors and errors[0].code() == KafkaError._AUTHENTICATION, (user, mech, errors)
        assert "invalid credentials" in errors[0].str(), errors[0].str()
    # Plaintext into a TLS listener: no Kafka answer (a TLS alert at most), and the node lives on.
    with socket.create_connection(("127.0.0.1", n.ports[0]), timeout=5) as s:
        api_versions_v0 = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02it"
        s.sendall(len(api_versions_v0).to_bytes(4, "big") + api_versions_v0)
        s.settimeout(5)
        reply = s.recv(100)
        assert not reply.startswith(b"\x00\x00"), reply
    # Kafka requests before SASL authentication close the connection.
    with socket.create_connection(("127.0.0.1", n.ports[1]), timeout=5) as s:
        metadata_v1 = b"\x00\x03\x00\x01\x00\x00\x00\x07\x00\x02it\xff\xff\xff\xff"
        s.sendall(len(metadata_v1).to_bytes(4, "big") + metadata_v1)
        s.settimeout(5)
        assert s.recv(100) == b""
    # A frame larger than sasl_server_max_receive_size before authenticating.
    with socket.create_connection(("127.0.0.1", n.ports[1]), timeout=5) as s:
        s.sendall((10 << 20).to_bytes(4, "big"))
        s.settimeout(5)
        assert s.recv(100) == b""
    assert n.alive()
    assert "closing connection" in n.log()
    # Failures are logged with the user and why, never a password.
    assert 'wrong password for user "carol"' in n.log()
    assert "carol-secret" not in n.log() and "Wr0ngPa55" not in n.log()


def test_scram_credentials_through_the_kafka_api(secure_node, pki):
    n = secure_node
    admin = admin_client(n, pki)
    up = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"dave-secret")
    admin.alter_user_scram_credentials([up])["dave"].result(30)
    infos = admin.describe_user_scram_credentials(["dave"])["dave"].result(30).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    grant(n, "User:dave", "DESCRIBE", "CLUSTER", "kafka-cluster")
    dave = AdminClient(sasl_conf(ssl_boot(n), "dave", "dave-secret", "SCRAM-SHA-512", ca=pki["ca"]))
    assert dave.list_topics(timeout=20) is not None
    # Not allowed to ALTER the cluster: dave cannot make himself users.
    f = dave.alter_user_scram_credentials([UserScramCredentialUpsertion("eve", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"x")])["eve"]
    with pytest.raises(KafkaException) as e:
        f.result(30)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # The stored credential is salted and hashed: the password is nowhere in the data dir.
    for root, _, files in os.walk(n.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert b"dave-secret" not in fh.read()


def test_cluster_port_and_admin_api_need_credentials(secure_node):
    n = secure_node

    def post(url, body=b"{}", headers=None):
        req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    raft = f"http://{n.raft}"
    for path in ("/raft/batch", "/raft/1/snapshot", "/cluster/controller", "/cluster/join", "/cluster/ping/1", "/cluster/move-leader"):
        assert post(raft + path) == 401, path
    # With the secret, the same request gets past the door (and is judged on
    # its content: this one lacks fields, 422).
    assert post(raft + "/raft/batch", json.dumps({"to": 1, "items": []}).encode(), {"x-chronik-cluster-secret": CLUSTER_SECRET}) == 422
    assert post(raft + "/raft/batch", b"{}", {"x-chronik-cluster-secret": CLUSTER_SECRET + "x"}) == 401

    assert admin_call(n.admin, "GET", "/v1/topics", token=None)[0] == 401
    assert admin_call(n.admin, "GET", "/v1/topics", token="not-a-token-at-all-really")[0] == 401
    assert admin_call(n.admin, "GET", "/v1/topics", token=READ_TOKEN)[0] == 200
    assert admin_call(n.admin, "POST", "/v1/topics", {"name": "t-ro"}, token=READ_TOKEN)[0] == 403
    assert admin_call(n.admin, "PUT", "/v1/users/x", {"password": "y"}, token=READ_TOKEN)[0] == 403
    assert admin_call(n.admin, "POST", "/v1/topics", {"name": "t-admin"}, token=ADMIN_TOKEN)[0] == 201
    # The admin API under /admin on the cluster port takes a token too, never nothing.
    assert admin_call(raft + "/admin", "GET", "/v1/topics", token=None)[0] == 401
    assert admin_call(raft + "/admin", "GET", "/v1/topics", token=READ_TOKEN)[0] == 200
    # /metrics and health stay open (metrics_require_auth is off).
    assert urllib.request.urlopen(n.admin + "/metrics", timeout=5).status == 200
    assert urllib.request.urlopen(n.admin + "/v1/health/live", timeout=5).status == 200
    assert ADMIN_TOKEN not in n.log() and CLUSTER_SECRET not in n.log()


def test_sessions_reauthenticate(node_factory, pki):
    """connections_max_reauth_ms: librdkafka re-authenticates on its open
    connections (KIP-368) and keeps producing."""
    n = node_factory()
    n.ports = [n.port, free_port(), free_port()]
    n.extra_args = secure_args(pki, n.ports, extra=["--connections-max-reauth-ms", "1500"])
    n.start()
    wait_for("controller", lambda: admin_call(n.admin, "GET", "/v1/health/ready")[0] == 200)
    add_user(n.admin, ADMIN_USER, ADMIN_PASSWORD)
    conf = sasl_conf(ssl_boot(n), ADMIN_USER, ADMIN_PASSWORD, ca=pki["ca"])
    p = Producer({**conf, "linger.ms": 5})
    results = []
    for i in range(40):
        p.produce("reauth", f"v{i}".encode(), on_delivery=lambda err, msg: results.append(err))
        p.poll(0)
        time.sleep(0.125)
    p.flush(20)
    assert results == [None] * 40
    m = urllib.request.urlopen(n.admin + "/metrics", timeout=5).read().decode()
    ok = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("chronik_authentications_total") and 'result="ok"' in l and "SCRAM" in l)
    assert ok >= 3, m
    # Re-authenticated in place: no connection was closed for an expired session.
    assert "SASL session expired" not in n.log()


def test_secure_three_node_cluster(cluster_factory, pki):
    """Nodes with mTLS and a cluster secret between them and SASL_SSL
    listeners: replication, forwarding and metadata all work; clients see
    every node's SASL_SSL address; the cluster port refuses plain HTTP and
    TLS without a node's certificate."""
    c = cluster_factory(3)
    for n in c.nodes.values():
        n.ports = [n.port, free_port(), free_port()]
        n.extra_args += secure_args(pki, n.ports, extra=["--cluster-tls", "true"])
        n.admin_token = READ_TOKEN
    c.start()
    first = c.nodes[1]
    add_user(first.admin, ADMIN_USER, ADMIN_PASSWORD)
    conf = sasl_conf(",".join(f"localhost:{n.port}" for n in c.nodes.values()), ADMIN_USER, ADMIN_PASSWORD, ca=pki["ca"])
    admin = AdminClient(conf)
    admin.create_topics([NewTopic("sec-rf3", 3, 3)])["sec-rf3"].result(30)
    md = admin.list_topics(timeout=20)
    assert sorted(b.port for b in md.brokers.values()) == sorted(n.port for n in c.nodes.values())
    assert produce(conf, "sec-rf3", [f"m{i}" for i in range(30)]) == [0] * 30
    assert sorted(consume(conf, "sec-rf3", "g-rf3", 30)) == sorted(f"m{i}" for i in range(30))
    # The cluster port: no plain HTTP, no TLS without a certificate the cluster's CA signed.
    import http.client
    import ssl
    raft_host, raft_port = first.raft.split(":")
    with pytest.raises((urllib.error.URLError, OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{first.raft}/cluster/ping/1", data=b"{}", timeout=5)
    anon = ssl.create_default_context(cafile=pki["ca"])
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection((raft_host, int(raft_port)), timeout=5) as raw:
            with anon.wrap_socket(raw, server_hostname=raft_host) as tls:
                tls.sendall(b"POST /cluster/ping/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                assert tls.recv(100), "no answer"
    # A node's certificate gets through TLS; without the secret, still 401.
    node_ctx = ssl.create_default_context(cafile=pki["ca"])
    node_ctx.load_cert_chain(pki["cert"], pki["key"])
    req = urllib.request.Request(f"https://{first.raft}/cluster/ping/1", data=b"{}", method="POST", headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5, context=node_ctx)
    assert e.value.code == 401
    # A user created on node 1 logs in on node 3 (credentials are replicated).
    add_user(first.admin, "erin", "erin-secret")
    erin = sasl_conf(f"localhost:{c.nodes[3].port}", "erin", "erin-secret", ca=pki["ca"])
    wait_for("erin can log in on node 3", lambda: AdminClient(erin).list_topics(timeout=5) is not None, timeout=30)
