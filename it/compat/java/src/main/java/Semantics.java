// Behaviours the Java client relies on (it/test_client_semantics.py runs
// these; each prints one JSON line):
//   Semantics async-commits BOOTSTRAP TOPIC GROUP N
//     commitAsync after each of N records, then the committed offset must be
//     the last one (pipelined commits apply in the order acknowledged);
//   Semantics static-restart BOOTSTRAP TOPIC GROUP
//     two static members split the topic; one restarts within its session:
//     the other sees no revocation and the restarted one gets its
//     partitions back.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class Semantics {
    static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    static void asyncCommits(String bootstrap, String topic, String group, int n) {
        TopicPartition tp = new TopicPartition(topic, 0);
        AtomicInteger failed = new AtomicInteger();
        AtomicInteger acked = new AtomicInteger();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    seen++;
                    c.commitAsync(Map.of(tp, new OffsetAndMetadata(r.offset() + 1)), (offsets, e) -> {
                        if (e != null) failed.incrementAndGet(); else acked.incrementAndGet();
                    });
                }
            }
            // Let the callbacks of every commit in flight arrive.
            while (acked.get() + failed.get() < seen && System.currentTimeMillis() < deadline) c.poll(Duration.ofMillis(50));
            long committed = c.committed(Set.of(tp)).get(tp).offset();
            System.out.printf("{\"ok\": %b, \"seen\": %d, \"acked\": %d, \"failed\": %d, \"committed\": %d}%n",
                committed == n && failed.get() == 0, seen, acked.get(), failed.get(), committed);
        }
    }

    static class Listener implements ConsumerRebalanceListener {
        final AtomicInteger revoked = new AtomicInteger();
        volatile Set<TopicPartition> assigned = Set.of();
        public void onPartitionsRevoked(Collection<TopicPartition> ps) { if (!ps.isEmpty()) revoked.incrementAndGet(); }
        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
            Set<TopicPartition> s = new HashSet<>(assigned);
            s.addAll(ps);
            assigned = s;
        }
        public void onPartitionsLost(Collection<TopicPartition> ps) { revoked.incrementAndGet(); }
    }

    static KafkaConsumer<String, String> staticMember(String bootstrap, String group, String instance) {
        Properties p = consumerProps(bootstrap, group);
        p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        return new KafkaConsumer<>(p);
    }

    static void pollFor(List<KafkaConsumer<String, String>> cs, long ms) {
        long end = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < end) for (KafkaConsumer<String, String> c : cs) c.poll(Duration.ofMillis(50));
    }

    static void staticRestart(String bootstrap, String topic, String group) {
        Listener la = new Listener(), lb = new Listener();
        KafkaConsumer<String, String> a = staticMember(bootstrap, group, "instance-a");
        KafkaConsumer<String, String> b = staticMember(bootstrap, group, "instance-b");
        a.subscribe(List.of(topic), la);
        b.subscribe(List.of(topic), lb);
        long deadline = System.currentTimeMillis() + 60_000;
        while ((a.assignment().isEmpty() || b.assignment().isEmpty() || a.assignment().size() + b.assignment().size() != 4)
                && System.currentTimeMillis() < deadline) pollFor(List.of(a, b), 200);
        Set<TopicPartition> before = Set.copyOf(a.assignment());
        String memberBefore = a.groupMetadata().memberId();
        pollFor(List.of(a, b), 1000);
        int revokedBefore = lb.revoked.get();
        // A static member does not leave the group on close: its session keeps its place.
        a.close();
        pollFor(List.of(b), 500);
        Listener la2 = new Listener();
        KafkaConsumer<String, String> a2 = staticMember(bootstrap, group, "instance-a");
        a2.subscribe(List.of(topic), la2);
        while (a2.assignment().isEmpty() && System.currentTimeMillis() < deadline) pollFor(List.of(a2, b), 200);
        pollFor(List.of(a2, b), 3000);
        String memberAfter = a2.groupMetadata().memberId();
        boolean ok = lb.revoked.get() == revokedBefore && a2.assignment().equals(before) && !memberAfter.equals(memberBefore)
            && memberAfter.startsWith("instance-a-");
        System.out.printf("{\"ok\": %b, \"b_revocations\": %d, \"before\": \"%s\", \"after\": \"%s\", \"member_before\": \"%s\", \"member_after\": \"%s\"}%n",
            ok, lb.revoked.get() - revokedBefore, before, a2.assignment(), memberBefore, memberAfter);
        a2.close();
        b.close();
    }

    public static void main(String[] args) {
        switch (args[0]) {
            case "async-commits" -> asyncCommits(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "static-restart" -> staticRestart(args[1], args[2], args[3]);
            default -> throw new IllegalArgumentException(args[0]);
        }
    }
}
