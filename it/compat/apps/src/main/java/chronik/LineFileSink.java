// Kafka's FileStreamSink example, re-written here (see LineFileSource):
// appends each record's value of `topics` to `file` as a line, flushing
// before offsets are committed.
package chronik;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.*;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.sink.SinkConnector;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;

public class LineFileSink extends SinkConnector {
    static final ConfigDef CONFIG = new ConfigDef().define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to append to");
    private Map<String, String> props;

    @Override public void start(Map<String, String> props) { this.props = props; }
    @Override public Class<? extends Task> taskClass() { return LineTask.class; }
    @Override public List<Map<String, String>> taskConfigs(int max) { return List.of(props); }
    @Override public void stop() {}
    @Override public ConfigDef config() { return CONFIG; }
    @Override public String version() { return "1"; }

    public static class LineTask extends SinkTask {
        private PrintStream out;

        @Override public String version() { return "1"; }

        @Override public void start(Map<String, String> props) {
            try {
                out = new PrintStream(new FileOutputStream(props.get("file"), true), false, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new ConnectException(e);
            }
        }

        @Override public void put(Collection<SinkRecord> records) {
            for (SinkRecord r : records) out.println(r.value());
        }

        @Override public void flush(Map<TopicPartition, OffsetAndMetadata> offsets) { out.flush(); }

        @Override public void stop() { if (out != null) out.close(); }
    }
}
