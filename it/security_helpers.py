"""Certificates, secrets and settings for running Chronik with security on:
a throwaway CA (openssl), a node certificate for localhost/127.0.0.1, client
certificates, the cluster secret and admin tokens, and the flags of a node
whose listeners are SASL_SSL, SASL_PLAINTEXT and SSL (mTLS).

Used by the security tests, `make cluster-secure` (it/cluster_secure.sh)
and the compat clients over SASL_SSL."""
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
READ_TOKEN = "read-token-for-tests-0123456789"
CLUSTER_SECRET = "cluster-secret-for-tests-0123456789"
# The super user every secure test (and make cluster-secure) creates.
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d, clients=("alice",)):
    """A CA, a node certificate (localhost, 127.0.0.*) and one client
    certificate per name (CN=name,OU=clients,O=chronik), as PEM files in d.
    Returns {name: path}."""
    os.makedirs(d, exist_ok=True)
    p = lambda name: os.path.join(d, name)
    if not os.path.exists(p("ca.pem")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                 "-subj", "/CN=chronik-test-ca", cwd=d)
        with open(p("node.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.11,IP:127.0.0.12,IP:127.0.0.13,IP:127.0.0.14,IP:127.0.0.15,IP:127.0.0.16\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=chronik-node", cwd=d)
        _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "node.pem",
                 "-days", "30", "-extfile", "node.ext", cwd=d)
        with open(p("client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for c in clients:
        if not os.path.exists(p(f"{c}.pem")):
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{c}.key", "-out", f"{c}.csr",
                     "-subj", f"/O=chronik/OU=clients/CN={c}", cwd=d)
            _openssl("x509", "-req", "-in", f"{c}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{c}.pem",
                     "-days", "30", "-extfile", "client.ext", cwd=d)
    for name, text in (("admin.token", ADMIN_TOKEN), ("read.token", READ_TOKEN), ("cluster.secret", CLUSTER_SECRET)):
        with open(p(name), "w") as f:
            f.write(text + "\n")
    return {"ca": p("ca.pem"), "cert": p("node.pem"), "key": p("node.key"), "dir": d}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secure_args(pki, ports, host="127.0.0.1", mechanisms="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", authorizer=True, extra=()):
    """Flags of a node with listeners SASL_SSL (ports[0], its main address),
    SASL_PLAINTEXT (ports[1]) and SSL with client certificates (ports[2])."""
    d = pki["dir"]
    listeners = f"SASL_SSL://{host}:{ports[0]},SASL_PLAINTEXT://{host}:{ports[1]},SSL://{host}:{ports[2]}"
    args = ["--listeners", listeners,
            "--ssl-cert-file", pki["cert"], "--ssl-key-file", pki["key"], "--ssl-ca-file", pki["ca"], "--ssl-client-auth", "requested",
            "--ssl-principal-mapping-rules", "RULE:^CN=([^,]+),OU=clients.*$/$1/L,DEFAULT",
            "--sasl-enabled-mechanisms", mechanisms,
            "--cluster-secret-file", os.path.join(d, "cluster.secret"),
            "--admin-token-file", os.path.join(d, "admin.token"), "--admin-read-token-file", os.path.join(d, "read.token")]
    if authorizer:
        args += ["--authorizer", "acl", "--super-users", f"User:{ADMIN_USER}"]
    return args + list(extra)


def admin_call(admin_url, method, path, body=None, token=ADMIN_TOKEN, timeout=15):
    """(status, JSON body) of one admin API call."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin_url + path, data=data, method=method, headers={"content-type": "application/json"})
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def add_user(admin_url, name, password, mechanisms=None):
    body = {"password": password}
    if mechanisms:
        body["mechanisms"] = mechanisms
    status, out = admin_call(admin_url, "PUT", f"/v1/users/{name}", body)
    assert status == 200, out
    return out


def sasl_conf(bootstrap, user, password, mechanism="SCRAM-SHA-512", ca=None):
    """confluent-kafka settings for SASL_SSL (with ca) or SASL_PLAINTEXT."""
    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL" if ca else "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
    if ca:
        conf["ssl.ca.location"] = ca
    return conf
