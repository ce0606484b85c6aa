package config

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConfigEntry is one broker config as DescribeConfigs reports it for the
// BROKER resource.
type ConfigEntry struct {
	Name          string
	Value         string
	Source        kmsg.ConfigSource // STATIC_BROKER_CONFIG when it differs from the default or was set, else DEFAULT_CONFIG
	ReadOnly      bool              // always true: broker configs cannot be altered at run time
	Sensitive     bool
	Type          kmsg.ConfigType
	Documentation string
}

// BrokerConfigEntries lists the broker's configuration, sorted by name: every
// key Load accepts (except input-only aliases such as log.retention.hours),
// plus Kafka's broker.id, log.dirs, listeners and advertised.listeners. A
// field-backed key is reported as STATIC_BROKER_CONFIG when its value differs
// from Default(); a topic default when it was set (present in TopicDefaults).
func (c Config) BrokerConfigEntries() []ConfigEntry {
	d := Default()
	var out []ConfigEntry
	for _, s := range settings {
		if s.get == nil {
			continue
		}
		v := s.get(&c)
		src := kmsg.ConfigSourceDefaultConfig
		if v != s.get(&d) {
			src = kmsg.ConfigSourceStaticBrokerConfig
		}
		out = append(out, ConfigEntry{Name: s.key, Value: v, Source: src, ReadOnly: true, Type: s.typ, Documentation: s.doc})
	}
	static := func(same bool) kmsg.ConfigSource {
		if same {
			return kmsg.ConfigSourceDefaultConfig
		}
		return kmsg.ConfigSourceStaticBrokerConfig
	}
	adv := c.AdvertisedKafkaAddr
	if adv == "" {
		adv = c.KafkaAddr
	}
	out = append(out,
		ConfigEntry{Name: "broker.id", Value: strconv.FormatInt(int64(c.NodeID), 10), Source: static(c.NodeID == d.NodeID),
			ReadOnly: true, Type: kmsg.ConfigTypeInt, Documentation: "Same as node.id."},
		ConfigEntry{Name: "log.dirs", Value: c.DataDir, Source: static(c.DataDir == d.DataDir),
			ReadOnly: true, Type: kmsg.ConfigTypeList, Documentation: "Same as data-dir."},
		ConfigEntry{Name: "listeners", Value: "PLAINTEXT://" + c.KafkaAddr, Source: static(c.KafkaAddr == d.KafkaAddr),
			ReadOnly: true, Type: kmsg.ConfigTypeString, Documentation: "The Kafka listener, from kafka-addr."},
		ConfigEntry{Name: "advertised.listeners", Value: "PLAINTEXT://" + adv, Source: static(c.AdvertisedKafkaAddr == ""),
			ReadOnly: true, Type: kmsg.ConfigTypeString, Documentation: "The listener clients are told to use, from advertised-kafka-addr."},
	)
	slices.SortFunc(out, func(a, b ConfigEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// AdvertisedAddr returns the HOST:PORT to give clients once the Kafka
// listener is bound to bound: advertised-kafka-addr when set, else the host
// of kafka-addr with the bound port (so that kafka-addr with port 0 works).
// A kafka-addr without a host or with a wildcard host (all interfaces)
// advertises "localhost"; set advertised-kafka-addr for remote clients.
func (c Config) AdvertisedAddr(bound net.Addr) string {
	if c.AdvertisedKafkaAddr != "" {
		return c.AdvertisedKafkaAddr
	}
	host, port, err := net.SplitHostPort(c.KafkaAddr)
	if err != nil {
		return c.KafkaAddr
	}
	if ta, ok := bound.(*net.TCPAddr); ok && ta != nil {
		port = strconv.Itoa(ta.Port)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
