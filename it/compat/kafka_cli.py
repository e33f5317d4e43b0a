"""Apache Kafka 4.4's own command-line tools against Chronik, as a new user
runs them: each kafka-*.sh is its main class from the Maven Central jars
(it/kafka/pom.xml, fetched by it/compat/install.sh), and each command's
output is checked against what Kafka itself prints.

Usage: python3 kafka_cli.py BOOTSTRAP TOPIC GROUP. Prints one JSON line:
{"ok", "version", "error", "commands"} (error names the first command that
failed, with its output)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KAFKA_LIB = os.environ.get("KAFKA_LIB", os.path.join(ROOT, "target", "apache-kafka-4.4.0", "lib"))
VERSION = "4.4.0"
TOOLS = "org.apache.kafka.tools."
LINES = 30


def tool(main_class, *args, stdin=None):
    r = subprocess.run(["java", "-cp", os.path.join(KAFKA_LIB, "*"), TOOLS + main_class, *args],
                       input=stdin, capture_output=True, text=True, timeout=120)
    noise = re.compile(r"^(SLF4J|WARN|log4j)")
    out = "\n".join(line for line in (r.stdout + r.stderr).splitlines() if not noise.match(line))
    return r.returncode, out


def commands(b, topic, group, tmp):
    """(what a user types, main class, args, stdin, regexes the output must
    match; one that starts with ! must not)."""
    records = "".join(f"line-{i}\n" for i in range(LINES))
    delete_json = os.path.join(tmp, "delete-records.json")
    with open(delete_json, "w") as f:
        json.dump({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 10}]}, f)
    t = re.escape(topic)
    g = re.escape(group)
    return [
        ("kafka-topics --create", "TopicCommand", ["--bootstrap-server", b, "--create", "--topic", topic, "--partitions", "1",
                                                   "--replication-factor", "1"], None, [rf"Created topic {t}\."]),
        ("kafka-topics --list", "TopicCommand", ["--bootstrap-server", b, "--list"], None, [rf"(?m)^{t}$"]),
        ("kafka-topics --alter --partitions", "TopicCommand", ["--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "3"], None, []),
        # Kafka 4's describe uses DescribeTopicPartitions; a topic id of zeros would be AAAAAAAAAAAAAAAAAAAAAA.
        ("kafka-topics --describe", "TopicCommand", ["--bootstrap-server", b, "--describe", "--topic", topic], None,
         [rf"Topic: {t}\tTopicId: (?!AAAAAAAAAAAAAAAAAAAAAA)[\w-]{{22}}\tPartitionCount: 3\tReplicationFactor: 1",
          rf"Topic: {t}\tPartition: 2\tLeader: \d+\tReplicas: \d+\tIsr: \d+"]),
        ("kafka-configs --alter", "ConfigCommand", ["--bootstrap-server", b, "--alter", "--entity-type", "topics", "--entity-name", topic,
                                                    "--add-config", "retention.ms=86400000,cleanup.policy=delete"], None,
         [rf"Completed updating config for topic {t}\."]),
        ("kafka-configs --describe", "ConfigCommand", ["--bootstrap-server", b, "--describe", "--entity-type", "topics", "--entity-name", topic], None,
         [r"retention\.ms=86400000 sensitive=false", r"cleanup\.policy=delete"]),
        ("kafka-configs --describe --all (broker)", "ConfigCommand", ["--bootstrap-server", b, "--describe", "--entity-type", "brokers",
                                                                     "--entity-name", "1", "--all"], None,
         [r"All configs for broker 1 are:", r"log\.retention\.ms="]),
        ("kafka-console-producer", "ConsoleProducer", ["--bootstrap-server", b, "--topic", topic, "--property", "parse.key=false",
                                                       "--producer-property", "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner"],
         records, []),
        ("kafka-console-consumer --group", "consumer.ConsoleConsumer", ["--bootstrap-server", b, "--topic", topic, "--group", group,
                                                                        "--from-beginning", "--max-messages", str(LINES)], None,
         [rf"Processed a total of {LINES} messages", r"(?m)^line-0$", rf"(?m)^line-{LINES - 1}$"]),
        ("kafka-consumer-groups --list", "consumer.group.ConsumerGroupCommand", ["--bootstrap-server", b, "--list"], None, [rf"(?m)^{g}$"]),
        ("kafka-consumer-groups --describe", "consumer.group.ConsumerGroupCommand", ["--bootstrap-server", b, "--describe", "--group", group], None,
         [rf"(?m)^{g}\s+{t}\s+0\s+10\s+10\s+0\s", rf"(?m)^{g}\s+{t}\s+2\s+10\s+10\s+0\s"]),
        ("kafka-consumer-groups --reset-offsets", "consumer.group.ConsumerGroupCommand",
         ["--bootstrap-server", b, "--reset-offsets", "--group", group, "--topic", f"{topic}:1", "--to-offset", "5", "--execute"], None,
         [rf"(?m)^{g}\s+{t}\s+1\s+5\s*$"]),
        ("kafka-consumer-groups --delete-offsets", "consumer.group.ConsumerGroupCommand",
         ["--bootstrap-server", b, "--delete-offsets", "--group", group, "--topic", f"{topic}:2"], None,
         [r"Request succeeded for deleting offsets", rf"(?m)^{t}\s+2\s+Successful"]),
        ("kafka-consumer-groups --describe (after)", "consumer.group.ConsumerGroupCommand", ["--bootstrap-server", b, "--describe", "--group", group],
         None, [rf"(?m)^{g}\s+{t}\s+1\s+5\s+10\s+5\s", rf"!(?m)^{g}\s+{t}\s+2\s"]),
        ("kafka-get-offsets", "GetOffsetShell", ["--bootstrap-server", b, "--topic", topic], None,
         [rf"(?m)^{t}:0:10$", rf"(?m)^{t}:1:10$", rf"(?m)^{t}:2:10$"]),
        ("kafka-get-offsets --time max-timestamp", "GetOffsetShell", ["--bootstrap-server", b, "--topic", topic, "--partitions", "0",
                                                                     "--time", "-3"], None, [rf"(?m)^{t}:0:\d$"]),
        ("kafka-delete-records", "DeleteRecordsCommand", ["--bootstrap-server", b, "--offset-json-file", delete_json], None,
         [rf"partition: {t}-0\tlow_watermark: 10"]),
        ("kafka-get-offsets --time earliest", "GetOffsetShell", ["--bootstrap-server", b, "--topic", topic, "--partitions", "0",
                                                                "--time", "earliest"], None, [rf"(?m)^{t}:0:10$"]),
        ("kafka-leader-election", "LeaderElectionCommand", ["--bootstrap-server", b, "--election-type", "preferred",
                                                            "--topic", topic, "--partition", "0"], None,
         [rf"Valid replica already elected for partitions {t}-0"]),
        ("kafka-log-dirs --describe", "LogDirsCommand", ["--bootstrap-server", b, "--describe", "--topic-list", topic], None,
         [r'"broker":1', rf'"partition":"{t}-1","size":\d+', r'"error":null']),
        ("kafka-metadata-quorum describe --status", "MetadataQuorumCommand", ["--bootstrap-server", b, "describe", "--status"], None,
         [r"ClusterId:\s+[\w-]{22}", r"LeaderId:\s+1", r"HighWatermark:\s+\d+", r'CurrentVoters:\s+\[\{"id": 1']),
        ("kafka-metadata-quorum describe --replication", "MetadataQuorumCommand", ["--bootstrap-server", b, "describe", "--replication"], None,
         [r"(?m)^1\s+\w+\s+\d+\s+0\s+\d+\s+\d+\s+Leader"]),
        ("kafka-cluster cluster-id", "ClusterTool", ["cluster-id", "--bootstrap-server", b], None, [r"Cluster ID: [\w-]{22}"]),
        ("kafka-broker-api-versions", "BrokerApiVersionsCommand", ["--bootstrap-server", b], None,
         [r"Produce\(0\): 0 to 13 \[usable: 13\]", r"Fetch\(1\): 4 to 18 \[usable: 18\]", r"DescribeTopicPartitions\(75\): 0 \[usable: 0\]"]),
        # The console producer is idempotent by default (Kafka 3+).
        ("kafka-transactions describe-producers", "TransactionsCommand", ["--bootstrap-server", b, "describe-producers", "--topic", topic,
                                                                          "--partition", "1"], None,
         [r"ProducerId\s+ProducerEpoch", r"(?m)^\d+\s+\d+\s+-1\s+\d+\s+\d+\s+None"]),
        ("kafka-consumer-groups --delete", "consumer.group.ConsumerGroupCommand", ["--bootstrap-server", b, "--delete", "--group", group], None,
         [rf"Deletion of requested consumer groups \('{g}'\) was successful\."]),
        ("kafka-topics --delete", "TopicCommand", ["--bootstrap-server", b, "--delete", "--topic", topic], None, []),
    ]


def main():
    bootstrap, topic, group = sys.argv[1:4]
    ran = []
    result = {"ok": True, "version": f"Apache Kafka {VERSION} tools"}
    try:
        with tempfile.TemporaryDirectory(prefix="compat-kafka-cli-") as tmp:
            for what, main_class, args, stdin, patterns in commands(bootstrap, topic, group, tmp):
                rc, out = tool(main_class, *args, stdin=stdin)
                missing = [p for p in patterns if bool(re.search(p.lstrip("!"), out)) == p.startswith("!")]
                ran.append(what)
                print(f"--- {what} (exit {rc})\n{out}", flush=True)
                if rc != 0 or missing:
                    result.update(ok=False, error=f"{what}: exit {rc}, output lacks {missing}: {out[-300:]!r}")
                    break
    except Exception as e:  # noqa: BLE001 - reported as the row's failure
        traceback.print_exc()
        result.update(ok=False, error=f"{type(e).__name__}: {e}")
    result["commands"] = len(ran)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
