// The compatibility scenario of ../scenario.py with the Java client and its
// default producer settings (idempotent, acks=all): create 3 partitions,
// produce 10,000 keyed messages, two members split and commit, 1,000 more,
// a new member resumes after the commits, describe and delete.
// Prints one JSON line.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Compat {
    static final int FIRST = 10_000, SECOND = 1_000, PARTITIONS = 3;
    static final long TIMEOUT_MS = 90_000;
    static String bootstrap, topic, group;

    record Pos(int partition, long offset) {}
    record Rec(int partition, long offset, String value) {}

    /** The runner's security settings (CHRONIK_COMPAT_* environment, see
     *  ../security_env.py) as client properties; none for PLAINTEXT. */
    static Properties security() {
        Properties p = new Properties();
        Map<String, String> env = System.getenv();
        String protocol = env.getOrDefault("CHRONIK_COMPAT_SECURITY", "PLAINTEXT");
        if (protocol.equals("PLAINTEXT")) return p;
        p.put("security.protocol", protocol);
        if (protocol.startsWith("SASL")) {
            String mech = env.get("CHRONIK_COMPAT_MECHANISM");
            String module = mech.equals("PLAIN") ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                                                 : "org.apache.kafka.common.security.scram.ScramLoginModule";
            p.put("sasl.mechanism", mech);
            p.put("sasl.jaas.config", module + " required username=\"" + env.get("CHRONIK_COMPAT_USER")
                  + "\" password=\"" + env.get("CHRONIK_COMPAT_PASSWORD") + "\";");
        }
        if (env.containsKey("CHRONIK_COMPAT_CA")) {
            p.put("ssl.truststore.type", "PEM");
            p.put("ssl.truststore.location", env.get("CHRONIK_COMPAT_CA"));
        }
        return p;
    }

    static void check(boolean cond, String msg) {
        if (!cond) throw new IllegalStateException(msg);
    }

    static Map<String, Pos> produce(String prefix, int n) throws Exception {
        Properties p = security();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Map<String, Pos> acked = new ConcurrentHashMap<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) fs.add(producer.send(new ProducerRecord<>(topic, "k" + i, prefix + i)));
            for (int i = 0; i < n; i++) {
                RecordMetadata md = fs.get(i).get(60, TimeUnit.SECONDS);
                acked.put(prefix + i, new Pos(md.partition(), md.offset()));
            }
        }
        return acked;
    }

    static class Member implements Runnable {
        final List<Rec> records = Collections.synchronizedList(new ArrayList<>());
        final Set<String> seen;
        final AtomicBoolean stop = new AtomicBoolean();
        volatile Set<Integer> finalAssignment = Set.of();
        volatile Throwable failure;
        Member(Set<String> seen) { this.seen = seen; }

        public void run() {
            Properties p = security();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            // -Dgroup.protocol=consumer: the KIP-848 protocol instead of the classic one.
            String protocol = System.getProperty("group.protocol");
            if (protocol != null) p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
                c.subscribe(List.of(topic));
                while (!stop.get()) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                        records.add(new Rec(r.partition(), r.offset(), r.value()));
                        seen.add(r.value());
                    }
                }
                c.commitSync();
                Set<Integer> a = new HashSet<>();
                for (TopicPartition tp : c.assignment()) a.add(tp.partition());
                finalAssignment = a;
            } catch (Throwable t) {
                failure = t;
            }
        }
    }

    static List<Member> runGroup(int count, int want) throws Exception {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        List<Member> members = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Member m = new Member(seen);
            members.add(m);
            Thread t = new Thread(m);
            t.start();
            threads.add(t);
        }
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        while (seen.size() < want && System.currentTimeMillis() < deadline) Thread.sleep(200);
        Thread.sleep(1000);
        for (Member m : members) m.stop.set(true);
        for (Thread t : threads) t.join(60_000);
        for (Member m : members) if (m.failure != null) throw new IllegalStateException("member failed: " + m.failure, m.failure);
        return members;
    }

    static void scenario() throws Exception {
        Properties ap = security();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
            Map<String, Pos> acked = produce("v", FIRST);
            List<Member> members = runGroup(2, FIRST);
            Set<Integer> a = members.get(0).finalAssignment, b = members.get(1).finalAssignment;
            check(!a.isEmpty() && !b.isEmpty() && Collections.disjoint(a, b) && a.size() + b.size() == PARTITIONS,
                "the two members must split the partitions, got " + a + " " + b);
            Set<String> distinct = new HashSet<>();
            for (Member m : members) {
                for (Rec r : m.records) {
                    check(new Pos(r.partition(), r.offset()).equals(acked.get(r.value())),
                        r.value() + " read at " + r.partition() + "/" + r.offset() + ", acknowledged at " + acked.get(r.value()));
                    distinct.add(r.value());
                }
            }
            check(distinct.size() == FIRST, "read " + distinct.size() + " distinct of " + FIRST);
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
            var ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                check(committed.get(tp) != null && committed.get(tp).offset() == ends.get(tp).offset(),
                    "partition " + p + " committed " + committed.get(tp) + ", end " + ends.get(tp).offset());
            }
            Map<String, Pos> acked2 = produce("n", SECOND);
            Member again = runGroup(1, SECOND).get(0);
            Set<String> got = new HashSet<>();
            Map<Integer, Long> firstOffset = new HashMap<>();
            for (Rec r : again.records) {
                check(new Pos(r.partition(), r.offset()).equals(acked2.get(r.value())),
                    r.value() + " read at " + r.partition() + "/" + r.offset() + ": not one of the new messages where acknowledged");
                got.add(r.value());
                firstOffset.merge(r.partition(), r.offset(), Math::min);
            }
            check(got.size() == SECOND, "the new member read " + got.size() + " distinct of " + SECOND);
            for (var e : firstOffset.entrySet()) {
                long c = committed.get(new TopicPartition(topic, e.getKey())).offset();
                check(e.getValue() == c, "partition " + e.getKey() + " resumed at " + e.getValue() + ", committed " + c);
            }
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            check(d.partitions().size() == PARTITIONS, "describe: " + d);
            admin.describeCluster().nodes().get(30, TimeUnit.SECONDS);
            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
        }
    }

    static String json(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    public static void main(String[] args) {
        bootstrap = args[0];
        topic = args[1];
        group = args[2];
        String version = org.apache.kafka.common.utils.AppInfoParser.getVersion();
        String error = "";
        try {
            scenario();
        } catch (Throwable t) {
            t.printStackTrace();
            error = String.valueOf(t);
            if (error.length() > 300) error = error.substring(0, 300);
        }
        System.out.println("{\"client\": \"java kafka-clients\", \"version\": " + json(version) + ", \"ok\": " + error.isEmpty()
            + ", \"error\": " + json(error) + "}");
        System.exit(error.isEmpty() ? 0 : 1);
    }
}
