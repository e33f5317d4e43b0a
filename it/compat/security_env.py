"""How a compat client connects, from the environment the runner sets
(run.py): nothing for PLAINTEXT, else
  CHRONIK_COMPAT_SECURITY   SASL_SSL, SASL_PLAINTEXT or SSL
  CHRONIK_COMPAT_MECHANISM  SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN
  CHRONIK_COMPAT_USER, CHRONIK_COMPAT_PASSWORD
  CHRONIK_COMPAT_CA         the CA's PEM file (TLS)
  CHRONIK_COMPAT_CERT, CHRONIK_COMPAT_KEY  a client certificate (mTLS)
and the settings each Python library takes for them."""
import os
import ssl

E = os.environ.get
PROTOCOL = E("CHRONIK_COMPAT_SECURITY", "PLAINTEXT")
MECHANISM = E("CHRONIK_COMPAT_MECHANISM", "")
USER, PASSWORD = E("CHRONIK_COMPAT_USER", ""), E("CHRONIK_COMPAT_PASSWORD", "")
CA, CERT, KEY = E("CHRONIK_COMPAT_CA"), E("CHRONIK_COMPAT_CERT"), E("CHRONIK_COMPAT_KEY")


def confluent():
    conf = {}
    if PROTOCOL == "PLAINTEXT":
        return conf
    conf["security.protocol"] = PROTOCOL
    if "SASL" in PROTOCOL:
        conf.update({"sasl.mechanisms": MECHANISM, "sasl.username": USER, "sasl.password": PASSWORD})
    if CA:
        conf["ssl.ca.location"] = CA
    if CERT:
        conf.update({"ssl.certificate.location": CERT, "ssl.key.location": KEY})
    return conf


def _ssl_context():
    if not CA:
        return None
    ctx = ssl.create_default_context(cafile=CA)
    if CERT:
        ctx.load_cert_chain(CERT, KEY)
    return ctx


def kafka_python():
    if PROTOCOL == "PLAINTEXT":
        return {}
    kw = {"security_protocol": PROTOCOL}
    if "SASL" in PROTOCOL:
        kw.update({"sasl_mechanism": MECHANISM, "sasl_plain_username": USER, "sasl_plain_password": PASSWORD})
    if CA:
        kw["ssl_context"] = _ssl_context()
    return kw


def aiokafka():
    return kafka_python()
