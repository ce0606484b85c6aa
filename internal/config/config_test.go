package config

import (
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var update = flag.Bool("update", false, "rewrite golden files")

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "streambus.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValidAndLoadedWithoutInput(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("Load with nothing = %+v, want Default %+v", c, d)
	}
	if d.DataDir != "./streambus-data" || d.KafkaAddr != "localhost:9092" || d.HTTPAddr != "localhost:9644" ||
		d.NodeID != 1 || d.FlushMode != FlushOnAck || d.ConnectionsMaxIdle != 10*time.Minute {
		t.Fatalf("unexpected defaults %+v", d)
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"data-dir":              "STREAMBUS_DATA_DIR",
		"kafka-addr":            "STREAMBUS_KAFKA_ADDR",
		"num.partitions":        "STREAMBUS_NUM_PARTITIONS",
		"log.retention.ms":      "STREAMBUS_LOG_RETENTION_MS",
		"advertised-kafka-addr": "STREAMBUS_ADVERTISED_KAFKA_ADDR",
	} {
		if got := envName(key); got != want {
			t.Errorf("envName(%s) = %s, want %s", key, got, want)
		}
	}
	seen := map[string]string{}
	for _, s := range settings {
		if other, dup := seen[envName(s.key)]; dup {
			t.Errorf("%s and %s share the environment name %s", s.key, other, envName(s.key))
		}
		seen[envName(s.key)] = s.key
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		file  string // YAML, "" for no file
		env   []string
		args  []string
		check func(Config) bool
	}{
		{"default", "", nil, nil,
			func(c Config) bool { return c.KafkaAddr == "localhost:9092" }},
		{"file over default", "kafka-addr: 127.0.0.1:1001\n", nil, nil,
			func(c Config) bool { return c.KafkaAddr == "127.0.0.1:1001" }},
		{"env over file", "kafka-addr: 127.0.0.1:1001\n", []string{"STREAMBUS_KAFKA_ADDR", "127.0.0.1:1002"}, nil,
			func(c Config) bool { return c.KafkaAddr == "127.0.0.1:1002" }},
		{"flag over env", "kafka-addr: 127.0.0.1:1001\n", []string{"STREAMBUS_KAFKA_ADDR", "127.0.0.1:1002"},
			[]string{"--kafka-addr", "127.0.0.1:1003"},
			func(c Config) bool { return c.KafkaAddr == "127.0.0.1:1003" }},
		{"flag with =", "", nil, []string{"--kafka-addr=127.0.0.1:1004", "--data-dir=/d"},
			func(c Config) bool { return c.KafkaAddr == "127.0.0.1:1004" && c.DataDir == "/d" }},
		{"flag over file", "data-dir: /file\n", nil, []string{"--data-dir", "/flag"},
			func(c Config) bool { return c.DataDir == "/flag" }},
		{"node id everywhere", "node.id: 2\n", []string{"STREAMBUS_NODE_ID", "3"}, []string{"--node-id", "4"},
			func(c Config) bool { return c.NodeID == 4 }},
		{"node id env", "node.id: 2\n", []string{"STREAMBUS_NODE_ID", "3"}, nil,
			func(c Config) bool { return c.NodeID == 3 }},
		{"nested yaml", "node:\n  id: 7\nlog:\n  retention:\n    ms: 1234\n", nil, nil,
			func(c Config) bool { return c.NodeID == 7 && c.TopicDefaults["retention.ms"] == "1234" }},
		{"env only keys", "num.partitions: 3\n", []string{"STREAMBUS_NUM_PARTITIONS", "5", "STREAMBUS_LOG_FLUSH_MODE", "interval"}, nil,
			func(c Config) bool { return c.NumPartitions == 5 && c.FlushMode == FlushInterval }},
		{"topic default env over file", "log.retention.ms: 1000\nmessage.max.bytes: 5000\n",
			[]string{"STREAMBUS_LOG_RETENTION_MS", "2000"}, nil,
			func(c Config) bool {
				return reflect.DeepEqual(c.TopicDefaults, map[string]string{"retention.ms": "2000", "max.message.bytes": "5000"})
			}},
		{"hours converts", "log.retention.hours: 2\nlog.roll.hours: 1\n", nil, nil,
			func(c Config) bool {
				return c.TopicDefaults["retention.ms"] == "7200000" && c.TopicDefaults["segment.ms"] == "3600000"
			}},
		{"hours -1 is unlimited", "log.retention.hours: -1\n", nil, nil,
			func(c Config) bool { return c.TopicDefaults["retention.ms"] == "-1" }},
		{"ms beats hours in one file", "log.retention.ms: 5\nlog.retention.hours: 2\n", nil, nil,
			func(c Config) bool { return c.TopicDefaults["retention.ms"] == "5" }},
		{"ms beats minutes in env", "", []string{"STREAMBUS_LOG_RETENTION_MS", "5", "STREAMBUS_LOG_RETENTION_MINUTES", "1"}, nil,
			func(c Config) bool { return c.TopicDefaults["retention.ms"] == "5" }},
		{"env hours beat file ms", "log.retention.ms: 5\n", []string{"STREAMBUS_LOG_RETENTION_HOURS", "1"}, nil,
			func(c Config) bool { return c.TopicDefaults["retention.ms"] == "3600000" }},
		{"yaml list for cleanup policy", "log.cleanup.policy: [compact, delete]\n", nil, nil,
			func(c Config) bool { return c.TopicDefaults["cleanup.policy"] == "compact,delete" }},
		{"bools and durations", "auto.create.topics.enable: false\nconnections.max.idle.ms: 1500\nshutdown.timeout.ms: 20\n", nil, nil,
			func(c Config) bool {
				return !c.AutoCreateTopics && c.ConnectionsMaxIdle == 1500*time.Millisecond && c.ShutdownTimeout == 20*time.Millisecond
			}},
		{"unknown env ignored", "", []string{"STREAMBUS_NO_SUCH_THING", "x"}, nil,
			func(c Config) bool { return c.KafkaAddr == "localhost:9092" }},
		{"empty file", "# nothing here\n", nil, nil,
			func(c Config) bool { return c.KafkaAddr == "localhost:9092" }},
		{"port 0 listen", "", nil, []string{"--kafka-addr", "127.0.0.1:0", "--http-addr", ":0"},
			func(c Config) bool { return c.KafkaAddr == "127.0.0.1:0" && c.HTTPAddr == ":0" }},
		{"advertised", "", nil, []string{"--advertised-kafka-addr", "broker.example:19092"},
			func(c Config) bool { return c.AdvertisedKafkaAddr == "broker.example:19092" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			c, err := Load(args, env(tc.env...))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	p1 := writeFile(t, "node.id: 11\n")
	c, err := Load(nil, env("STREAMBUS_CONFIG", p1))
	if err != nil || c.NodeID != 11 {
		t.Fatalf("STREAMBUS_CONFIG: %+v, %v", c, err)
	}
	p2 := writeFile(t, "node.id: 12\n")
	c, err = Load([]string{"--config=" + p2}, env("STREAMBUS_CONFIG", p1))
	if err != nil || c.NodeID != 12 {
		t.Fatalf("--config over STREAMBUS_CONFIG: %+v, %v", c, err)
	}
}

func TestHelp(t *testing.T) {
	for _, a := range []string{"-h", "--help", "-help"} {
		if _, err := Load([]string{"--data-dir", "/x", a}, env()); !errors.Is(err, ErrHelp) {
			t.Errorf("Load(%s) = %v, want ErrHelp", a, err)
		}
	}
	got := Usage()
	golden := filepath.Join("testdata", "help.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("Usage() differs from %s (rerun with -update and review the diff):\n%s", golden, got)
	}
	for _, s := range settings {
		if !strings.Contains(got, "  "+s.key+"  $"+envName(s.key)) {
			t.Errorf("usage does not list key %s", s.key)
		}
		if s.flag != "" && !strings.Contains(got, "--"+s.flag) {
			t.Errorf("usage does not list flag --%s", s.flag)
		}
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		args []string
		want []string // substrings of the error
	}{
		{"unknown flag", "", nil, []string{"--bogus", "1"}, []string{"bogus"}},
		{"positional", "", nil, []string{"extra"}, []string{`unexpected argument "extra"`}},
		{"flag missing value", "", nil, []string{"--data-dir"}, []string{"data-dir"}},
		{"empty --config", "", nil, []string{"--config="}, []string{"--config"}},
		{"missing file", "", nil, []string{"--config", "/nonexistent/streambus.yaml"}, []string{"config: file", "nonexistent"}},
		{"bad port flag", "", nil, []string{"--kafka-addr", "localhost:99999"}, []string{"flag --kafka-addr", "port"}},
		{"no port flag", "", nil, []string{"--http-addr", "localhost"}, []string{"flag --http-addr"}},
		{"named port", "", nil, []string{"--http-addr", "localhost:http"}, []string{"flag --http-addr", "port"}},
		{"advertised port 0", "", nil, []string{"--advertised-kafka-addr", "h:0"}, []string{"flag --advertised-kafka-addr"}},
		{"advertised without host", "", nil, []string{"--advertised-kafka-addr", ":9092"}, []string{"flag --advertised-kafka-addr", "no host"}},
		{"empty data dir flag", "", nil, []string{"--data-dir="}, []string{"flag --data-dir", "empty"}},
		{"negative node id flag", "", nil, []string{"--node-id", "-1"}, []string{"flag --node-id", "out of range"}},
		{"bad port env", "", []string{"STREAMBUS_KAFKA_ADDR", "h:-1"}, nil, []string{"STREAMBUS_KAFKA_ADDR", "kafka-addr", "port"}},
		{"bad int env", "", []string{"STREAMBUS_NUM_PARTITIONS", "many"}, nil, []string{"STREAMBUS_NUM_PARTITIONS", "num.partitions", "not an integer"}},
		{"zero partitions env", "", []string{"STREAMBUS_NUM_PARTITIONS", "0"}, nil, []string{"num.partitions", "out of range"}},
		{"rf too big env", "", []string{"STREAMBUS_DEFAULT_REPLICATION_FACTOR", "40000"}, nil, []string{"default.replication.factor"}},
		{"negative size env", "", []string{"STREAMBUS_SOCKET_REQUEST_MAX_BYTES", "-5"}, nil, []string{"socket.request.max.bytes"}},
		{"bad bool env", "", []string{"STREAMBUS_AUTO_CREATE_TOPICS_ENABLE", "yes"}, nil, []string{"auto.create.topics.enable", "true or false"}},
		{"bad enum env", "", []string{"STREAMBUS_LOG_FLUSH_MODE", "always"}, nil, []string{"STREAMBUS_LOG_FLUSH_MODE", "log.flush.mode"}},
		{"zero ms env", "", []string{"STREAMBUS_LOG_FLUSH_INTERVAL_MS", "0"}, nil, []string{"log.flush.interval.ms"}},
		{"ms overflow env", "", []string{"STREAMBUS_SHUTDOWN_TIMEOUT_MS", "9223372036854775807"}, nil, []string{"shutdown.timeout.ms", "out of range"}},
		{"bad topic default env", "", []string{"STREAMBUS_LOG_SEGMENT_BYTES", "-1"}, nil, []string{"STREAMBUS_LOG_SEGMENT_BYTES", "log.segment.bytes", "segment.bytes"}},
		{"bad compression env", "", []string{"STREAMBUS_COMPRESSION_TYPE", "brotli"}, nil, []string{"compression.type"}},
		{"bad hours env", "", []string{"STREAMBUS_LOG_RETENTION_HOURS", "-2"}, nil, []string{"log.retention.hours"}},
		{"hours overflow env", "", []string{"STREAMBUS_LOG_ROLL_HOURS", "9223372036854775807"}, nil, []string{"log.roll.hours"}},
		{"roll hours zero", "log.roll.hours: 0\n", nil, nil, []string{"log.roll.hours"}},
		{"unknown file key", "kafka-addr: h:1\nretention.ms: 5\n", nil, nil, []string{"config: file", `unknown key "retention.ms"`}},
		{"bad file value", "num.partitions: -3\n", nil, nil, []string{"config: file", "key num.partitions", "out of range"}},
		{"bad file enum", "log.message.timestamp.type: Now\n", nil, nil, []string{"config: file", "log.message.timestamp.type"}},
		{"bad file policy", "log.cleanup.policy: [compact, purge]\n", nil, nil, []string{"log.cleanup.policy"}},
		{"null file value", "data-dir:\n", nil, nil, []string{"data-dir has no value"}},
		{"duplicate file key", "node.id: 1\nnode:\n  id: 2\n", nil, nil, []string{"node.id is given twice"}},
		{"alias", "a: &x 1\nnode.id: *x\n", nil, nil, []string{"aliases"}},
		{"not a mapping", "- 1\n- 2\n", nil, nil, []string{"mapping"}},
		{"invalid yaml", "node.id: [1\n", nil, nil, []string{"invalid YAML"}},
		{"nested list item", "log.cleanup.policy: [[compact]]\n", nil, nil, []string{"list items"}},
		{"complex key", "? [a]\n: 1\n", nil, nil, []string{"plain strings"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, err := Load(args, env(tc.env...))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateHandBuilt(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(*Config)
	}{
		{"node.id", func(c *Config) { c.NodeID = -1 }},
		{"data-dir", func(c *Config) { c.DataDir = " " }},
		{"kafka-addr", func(c *Config) { c.KafkaAddr = "nope" }},
		{"advertised-kafka-addr", func(c *Config) { c.AdvertisedKafkaAddr = "h:0" }},
		{"http-addr", func(c *Config) { c.HTTPAddr = "" }},
		{"num.partitions", func(c *Config) { c.NumPartitions = 0 }},
		{"default.replication.factor", func(c *Config) { c.DefaultReplicationFactor = -1 }},
		{"socket.request.max.bytes", func(c *Config) { c.SocketRequestMaxBytes = 0 }},
		{"connections.max.idle.ms", func(c *Config) { c.ConnectionsMaxIdle = 0 }},
		{"socket.request.read.timeout.ms", func(c *Config) { c.RequestReadTimeout = time.Microsecond }},
		{"log.flush.mode", func(c *Config) { c.FlushMode = "sometimes" }},
		{"log.flush.interval.ms", func(c *Config) { c.FlushInterval = -time.Second }},
		{"log.retention.check.interval.ms", func(c *Config) { c.LogRetentionCheckInterval = 0 }},
		{"shutdown.timeout.ms", func(c *Config) { c.ShutdownTimeout = 0 }},
		{"retention.ms", func(c *Config) { c.TopicDefaults = map[string]string{"retention.ms": "x"} }},
		{"log.retention.ms", func(c *Config) { c.TopicDefaults = map[string]string{"log.retention.ms": "1"} }},
	}
	for _, tc := range tests {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: Validate = %v, want an error naming it", tc.key, err)
		}
	}
	c := Default()
	c.TopicDefaults = nil // a nil map is a valid "nothing set"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerConfigEntries(t *testing.T) {
	c, err := Load([]string{"--node-id", "3", "--kafka-addr", "127.0.0.1:0"},
		env("STREAMBUS_LOG_RETENTION_MS", "1000", "STREAMBUS_NUM_PARTITIONS", "1"))
	if err != nil {
		t.Fatal(err)
	}
	entries := c.BrokerConfigEntries()
	byName := map[string]ConfigEntry{}
	for i, e := range entries {
		if i > 0 && entries[i-1].Name >= e.Name {
			t.Fatalf("not sorted or duplicated at %s", e.Name)
		}
		if !e.ReadOnly || e.Type == 0 {
			t.Errorf("%s: want read-only with a type, got %+v", e.Name, e)
		}
		byName[e.Name] = e
	}
	want := map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"broker.id":                 {"3", kmsg.ConfigSourceStaticBrokerConfig},
		"node.id":                   {"3", kmsg.ConfigSourceStaticBrokerConfig},
		"log.dirs":                  {"./streambus-data", kmsg.ConfigSourceDefaultConfig},
		"listeners":                 {"PLAINTEXT://127.0.0.1:0", kmsg.ConfigSourceStaticBrokerConfig},
		"advertised.listeners":      {"PLAINTEXT://127.0.0.1:0", kmsg.ConfigSourceDefaultConfig},
		"log.retention.ms":          {"1000", kmsg.ConfigSourceStaticBrokerConfig},
		"log.segment.bytes":         {"1073741824", kmsg.ConfigSourceDefaultConfig},
		"message.max.bytes":         {"1048588", kmsg.ConfigSourceDefaultConfig},
		"num.partitions":            {"1", kmsg.ConfigSourceDefaultConfig},
		"connections.max.idle.ms":   {"600000", kmsg.ConfigSourceDefaultConfig},
		"log.flush.mode":            {"ack", kmsg.ConfigSourceDefaultConfig},
		"auto.create.topics.enable": {"true", kmsg.ConfigSourceDefaultConfig},
		"compression.type":          {"producer", kmsg.ConfigSourceDefaultConfig},
	}
	for name, w := range want {
		e, ok := byName[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if e.Value != w.value || e.Source != w.source {
			t.Errorf("%s = %q (source %v), want %q (source %v)", name, e.Value, e.Source, w.value, w.source)
		}
	}
	for _, s := range settings {
		if _, ok := byName[s.key]; !ok && s.get != nil {
			t.Errorf("settable key %s not described", s.key)
		}
	}
	if _, ok := byName["log.retention.hours"]; ok {
		t.Errorf("input-only alias log.retention.hours should not be described")
	}
}

func TestAdvertisedAddr(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	tests := []struct {
		kafka, adv string
		want       string
	}{
		{"127.0.0.1:0", "", "127.0.0.1:40000"},
		{":9092", "", "localhost:40000"},
		{"0.0.0.0:9092", "", "localhost:40000"},
		{"[::]:9092", "", "localhost:40000"},
		{"myhost:9092", "", "myhost:40000"},
		{"127.0.0.1:0", "public:19092", "public:19092"},
	}
	for _, tc := range tests {
		c := Default()
		c.KafkaAddr, c.AdvertisedKafkaAddr = tc.kafka, tc.adv
		if got := c.AdvertisedAddr(bound); got != tc.want {
			t.Errorf("AdvertisedAddr(kafka=%s, adv=%s) = %s, want %s", tc.kafka, tc.adv, got, tc.want)
		}
	}
	c := Default()
	if got := c.AdvertisedAddr(nil); got != "localhost:9092" {
		t.Errorf("AdvertisedAddr(nil) = %s", got)
	}
}

func TestSettingsOrderAliasesFirst(t *testing.T) {
	idx := func(k string) int {
		return slices.IndexFunc(settings, func(s setting) bool { return s.key == k })
	}
	for alias, key := range map[string]string{
		"log.retention.hours":   "log.retention.ms",
		"log.retention.minutes": "log.retention.ms",
		"log.roll.hours":        "log.roll.ms",
	} {
		if idx(alias) < 0 || idx(key) < 0 || idx(alias) > idx(key) {
			t.Errorf("%s must be applied before %s", alias, key)
		}
	}
}

// FuzzParseYAML checks that no config file makes the loader panic.
func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("node.id: 1\nkafka-addr: localhost:9092\n"))
	f.Add([]byte("log:\n  cleanup:\n    policy: [compact, delete]\n"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseYAML(data)
		if err != nil {
			return
		}
		c := Default()
		for _, k := range sortedKeys(m) {
			if s, ok := lookupSetting(k); ok {
				_ = s.set(&c, m[k])
			}
		}
	})
}

func TestVoters(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	c, err := Load([]string{"--node-id", "2", "--raft-addr", "127.0.0.2:9093", "--voters", "1=127.0.0.1:9093, 2=127.0.0.2:9093,3=127.0.0.3:9093"}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Voters) != 3 || c.Voters[3] != "127.0.0.3:9093" || c.RaftAddr != "127.0.0.2:9093" {
		t.Fatalf("voters %v raft %q", c.Voters, c.RaftAddr)
	}
	if c, err := Load([]string{"--node-id", "4", "--raft-addr", "127.0.0.4:9093", "--voters", "1=127.0.0.1:9093"}, env()); err != nil || c.Voters[4] != "" {
		t.Fatalf("non-voter: %v %v", c.Voters, err)
	}
	for _, bad := range [][]string{
		{"--node-id", "4", "--raft-addr", "127.0.0.1:9093", "--voters", "1=127.0.0.1:9093"},       // non-voter on a voter's address
		{"--node-id", "4", "--voters", "1=127.0.0.1:9093"},                                        // non-voter without raft-addr
		{"--node-id", "1", "--voters", "1=127.0.0.1:9093"},                                        // no raft-addr
		{"--node-id", "1", "--raft-addr", "127.0.0.1:9094", "--voters", "1=127.0.0.1:9093"},       // mismatch
		{"--node-id", "1", "--raft-addr", "127.0.0.1:9093", "--voters", "1=127.0.0.1:9093,1=x:1"}, // duplicate
		{"--node-id", "1", "--raft-addr", "127.0.0.1:9093", "--voters", "one=127.0.0.1:9093"},     // bad id
		{"--node-id", "1", "--raft-addr", "127.0.0.1:9093", "--voters", "1=127.0.0.1"},            // no port
	} {
		if _, err := Load(bad, env()); err == nil || !strings.Contains(err.Error(), "voter") && !strings.Contains(err.Error(), "raft-addr") {
			t.Errorf("%v: got %v", bad, err)
		}
	}
}

func TestParseConnectionOverrides(t *testing.T) {
	got, err := ParseConnectionOverrides(" 127.0.0.1:5, broker.example:0 ,::1:7,[fe80::1]:2,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"127.0.0.1": 5, "broker.example": 0, "::1": 7, "fe80::1": 2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"127.0.0.1", ":5", "h:-1", "h:x", "h:1,h:2", "h:99999999999"} {
		if _, err := ParseConnectionOverrides(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
