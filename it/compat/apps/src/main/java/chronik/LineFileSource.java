// Kafka's FileStreamSource example, re-written here because Maven Central
// as this machine reaches it does not serve org.apache.kafka:connect-file:
// each line appended to `file` becomes a record of `topic`; the byte
// position after it is the source offset, so a restarted task resumes.
package chronik;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.util.*;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

public class LineFileSource extends SourceConnector {
    static final ConfigDef CONFIG = new ConfigDef()
        .define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to read")
        .define("topic", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "topic to write");
    private Map<String, String> props;

    @Override public void start(Map<String, String> props) { this.props = props; }
    @Override public Class<? extends Task> taskClass() { return LineTask.class; }
    @Override public List<Map<String, String>> taskConfigs(int max) { return List.of(props); }
    @Override public void stop() {}
    @Override public ConfigDef config() { return CONFIG; }
    @Override public String version() { return "1"; }

    public static class LineTask extends SourceTask {
        private String file, topic;
        private long position;

        @Override public String version() { return "1"; }

        @Override public void start(Map<String, String> props) {
            file = props.get("file");
            topic = props.get("topic");
            Map<String, Object> stored = context.offsetStorageReader().offset(Map.of("file", file));
            position = stored == null ? 0 : ((Number) stored.get("position")).longValue();
        }

        @Override public List<SourceRecord> poll() throws InterruptedException {
            List<SourceRecord> out = new ArrayList<>();
            try (RandomAccessFile f = new RandomAccessFile(file, "r")) {
                f.seek(position);
                byte[] rest = new byte[(int) Math.min(f.length() - position, 1 << 20)];
                f.readFully(rest);
                int start = 0;
                for (int i = 0; i < rest.length; i++) {
                    if (rest[i] != '\n') continue;
                    String line = new String(rest, start, i - start, StandardCharsets.UTF_8);
                    position += i + 1 - start;
                    start = i + 1;
                    out.add(new SourceRecord(Map.of("file", file), Map.of("position", position), topic, null, null, null, Schema.STRING_SCHEMA, line));
                }
            } catch (IOException e) {
                // Not there yet: nothing to read.
            }
            if (out.isEmpty()) Thread.sleep(200);
            return out;
        }

        @Override public void stop() {}
    }
}
