package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/streambus/streambus/internal/topicconfig"
)

// ErrHelp is returned by Load when the arguments ask for help (-h, --help).
// The caller prints Usage() to standard output and exits 0.
var ErrHelp = errors.New("config: help requested")

// configEnv names the config file when --config is not given.
const configEnv = "STREAMBUS_CONFIG"

// Default returns the built-in configuration, before any file, environment
// variable or flag is applied.
func Default() Config {
	return Config{
		NodeID:                    1,
		DataDir:                   "./streambus-data",
		KafkaAddr:                 "localhost:9092",
		HTTPAddr:                  "localhost:9644",
		AutoCreateTopics:          true,
		NumPartitions:             1,
		DefaultReplicationFactor:  1,
		SocketRequestMaxBytes:     104857600,
		ConnectionsMaxIdle:        600000 * time.Millisecond,
		MaxConnections:            math.MaxInt32,
		LogDirMinFreeBytes:        64 << 20,
		MaxConnectionsPerIP:       math.MaxInt32,
		RequestReadTimeout:        30000 * time.Millisecond,
		FlushMode:                 FlushOnAck,
		FlushInterval:             1000 * time.Millisecond,
		LogRetentionCheckInterval: 300000 * time.Millisecond,
		LogMaxOpenFiles:           10000,
		TopicDefaults:             map[string]string{},
		ShutdownTimeout:           10000 * time.Millisecond,
		BrokerHeartbeatInterval:   2000 * time.Millisecond,
		BrokerSessionTimeout:      9000 * time.Millisecond,
		ControllerElectionTimeout: 1000 * time.Millisecond,
		ReplicaLagTime:            30000 * time.Millisecond,

		AutoLeaderRebalance:          true,
		LeaderImbalanceCheckInterval: 300 * time.Second,
		LeaderImbalancePerBroker:     10,
		Groups: GroupConfig{
			OffsetsTopicPartitions:        8,
			OffsetsTopicReplicationFactor: 3,
			MinSessionTimeout:             6000 * time.Millisecond,
			MaxSessionTimeout:             1800000 * time.Millisecond,
			InitialRebalanceDelay:         3000 * time.Millisecond,
			MaxSize:                       math.MaxInt32,
			OffsetsRetention:              10080 * time.Minute,
			OffsetMetadataMaxBytes:        4096,
			ConsumerSessionTimeout:        45000 * time.Millisecond,
			ConsumerHeartbeatInterval:     5000 * time.Millisecond,
			ConsumerAssignors:             []string{"uniform", "range"},
		},
	}
}

// Load builds the configuration from the command-line arguments (without
// the program name), the environment as seen through lookupEnv, and the
// YAML file named by --config (or $STREAMBUS_CONFIG). Precedence: flags >
// STREAMBUS_* environment variables > file > defaults. Unknown flags and
// unknown file keys are errors; unknown STREAMBUS_* variables are ignored.
// Every error names the key and where the bad value came from. For -h or
// --help Load returns ErrHelp.
func Load(args []string, lookupEnv func(string) (string, bool)) (Config, error) {
	flags, configFile, err := parseFlags(args)
	if err != nil {
		return Config{}, err
	}
	if configFile == "" {
		configFile, _ = lookupEnv(configEnv)
	}
	c := Default()
	if configFile != "" {
		if err := applyFile(&c, configFile); err != nil {
			return Config{}, err
		}
	}
	for i := range settings {
		s := &settings[i]
		name := envName(s.key)
		if v, ok := lookupEnv(name); ok {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("config: environment variable %s (%s): %w", name, s.key, err)
			}
		}
	}
	for i := range settings {
		s := &settings[i]
		if v, ok := flags[s.flag]; ok && s.flag != "" {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("config: flag --%s: %w", s.flag, err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseFlags returns the value of every flag given, keyed by flag name, and
// the --config value. Both --flag value and --flag=value work (and the
// single-dash forms the flag package also accepts).
func parseFlags(args []string) (map[string]string, string, error) {
	fs := flag.NewFlagSet("streambus-broker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configFile := fs.String("config", "", "")
	for _, s := range settings {
		if s.flag != "" {
			fs.String(s.flag, "", "")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", ErrHelp
		}
		return nil, "", fmt.Errorf("config: %v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("config: unexpected argument %q (see --help)", fs.Arg(0))
	}
	given := map[string]string{}
	var fileErr error
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = f.Value.String()
		if f.Name == "config" && *configFile == "" {
			fileErr = errors.New("config: flag --config: empty file name")
		}
	})
	return given, *configFile, fileErr
}

// applyFile reads a YAML mapping of keys to scalar values. Nested mappings
// are flattened with dots (node: {id: 1} is node.id), so both spellings
// work; a list is accepted for list-valued keys (log.cleanup.policy).
func applyFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: file: %w", err)
	}
	values, err := parseYAML(data)
	if err != nil {
		return fmt.Errorf("config: file %s: %w", path, err)
	}
	for _, k := range sortedKeys(values) {
		if _, ok := lookupSetting(k); !ok {
			return fmt.Errorf("config: file %s: unknown key %q", path, k)
		}
	}
	// Apply in table order, not file order, so that aliases such as
	// log.retention.hours never override log.retention.ms from the same file.
	for i := range settings {
		s := &settings[i]
		if v, ok := values[s.key]; ok {
			if err := s.set(c, v); err != nil {
				return fmt.Errorf("config: file %s: key %s: %w", path, s.key, err)
			}
		}
	}
	return nil
}

// parseYAML flattens a YAML document into key → string value. Errors name
// the key; unknown keys are left to the caller.
func parseYAML(data []byte) (map[string]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	out := map[string]string{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return out, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return out, nil // a file of only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the top level must be a mapping of keys to values", root.Line)
	}
	if err := flatten(root, "", out); err != nil {
		return nil, err
	}
	return out, nil
}

func flatten(m *yaml.Node, prefix string, out map[string]string) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: keys must be plain strings", k.Line)
		}
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		switch v.Kind {
		case yaml.MappingNode:
			if err := flatten(v, key, out); err != nil {
				return err
			}
			continue
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				return fmt.Errorf("line %d: key %s has no value", v.Line, key)
			}
			if _, dup := out[key]; dup {
				return fmt.Errorf("line %d: key %s is given twice", k.Line, key)
			}
			out[key] = v.Value
		case yaml.SequenceNode:
			items := make([]string, 0, len(v.Content))
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: key %s: list items must be plain values", it.Line, key)
				}
				items = append(items, it.Value)
			}
			if _, dup := out[key]; dup {
				return fmt.Errorf("line %d: key %s is given twice", k.Line, key)
			}
			out[key] = strings.Join(items, ",")
		default:
			// Aliases are refused rather than expanded: expansion of nested
			// aliases can grow exponentially, and no key needs them.
			return fmt.Errorf("line %d: key %s: aliases are not supported", v.Line, key)
		}
	}
	return nil
}

// Validate checks every field of a Config, including one built without
// Load, and returns an error naming the first bad key.
func (c *Config) Validate() error {
	for i := range settings {
		s := &settings[i]
		if s.check == nil {
			continue
		}
		if err := s.check(c); err != nil {
			return fmt.Errorf("config: %s: %w", s.key, err)
		}
	}
	if err := topicconfig.ValidateAll(c.TopicDefaults); err != nil {
		return fmt.Errorf("config: topic defaults: %w", err)
	}
	return nil
}

// Usage returns the --help text: the flags, then every configuration key
// with its environment variable and default.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: streambus-broker [--config FILE] [--data-dir DIR] [--kafka-addr HOST:PORT]\n")
	b.WriteString("                        [--advertised-kafka-addr HOST:PORT] [--http-addr HOST:PORT] [--node-id N]\n\n")
	b.WriteString("StreamBus broker: an event-streaming broker speaking the Apache Kafka protocol.\n\n")
	b.WriteString("Flags (--flag value and --flag=value both work):\n")
	fmt.Fprintf(&b, "  %-36s %s\n", "--config FILE", "YAML configuration file (also $"+configEnv+")")
	d := Default()
	for _, s := range settings {
		if s.flag != "" {
			def := s.get(&d)
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(&b, "  %-36s key %s, default %s\n", "--"+s.flag+" "+s.arg, s.key, def)
		}
	}
	fmt.Fprintf(&b, "  %-36s %s\n\n", "-h, --help", "print this help and exit")
	b.WriteString("Configuration keys (YAML key, environment variable, default):\n")
	for _, s := range settings {
		def := "(unset)"
		if s.get != nil {
			def = s.get(&d)
		}
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "  %s  $%s  default %s\n      %s\n", s.key, envName(s.key), def, s.doc)
	}
	b.WriteString("\nPrecedence: flags > STREAMBUS_* environment variables > config file > defaults.\n")
	b.WriteString("Unknown keys in the config file are errors; unknown STREAMBUS_* variables are ignored.\n")
	return b.String()
}

// sortedKeys returns m's keys in order, so that errors are deterministic.
func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
