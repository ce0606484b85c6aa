package config

import (
	"strings"
	"testing"
)

// TestReplicaSelector: broker.rack and replica.selector.class load from
// every source; the alias normalises to Kafka's class name; an unknown
// selector is an error naming the key, and so is a hand-built one.
func TestReplicaSelector(t *testing.T) {
	c, err := Load(nil, env())
	if err != nil {
		t.Fatal(err)
	}
	if c.BrokerRack != "" || c.ReplicaSelectorClass != "" || c.RackAware() {
		t.Fatalf("defaults: rack %q selector %q", c.BrokerRack, c.ReplicaSelectorClass)
	}
	c, err = Load([]string{"--config", writeFile(t, "broker.rack: eu-1a\nreplica.selector.class: rack-aware\n")}, env())
	if err != nil {
		t.Fatal(err)
	}
	if c.BrokerRack != "eu-1a" || c.ReplicaSelectorClass != RackAwareReplicaSelector || !c.RackAware() {
		t.Fatalf("file: rack %q selector %q", c.BrokerRack, c.ReplicaSelectorClass)
	}
	c, err = Load(nil, env("STREAMBUS_BROKER_RACK", " b ", "STREAMBUS_REPLICA_SELECTOR_CLASS", RackAwareReplicaSelector))
	if err != nil {
		t.Fatal(err)
	}
	if c.BrokerRack != "b" || !c.RackAware() {
		t.Fatalf("env: rack %q selector %q", c.BrokerRack, c.ReplicaSelectorClass)
	}
	found := false
	for _, e := range c.BrokerConfigEntries() {
		if e.Name == "replica.selector.class" {
			found = e.Value == RackAwareReplicaSelector
		}
	}
	if !found {
		t.Error("DescribeConfigs does not list replica.selector.class with Kafka's class name")
	}

	_, err = Load(nil, env("STREAMBUS_REPLICA_SELECTOR_CLASS", "org.example.NearestSelector"))
	if err == nil || !strings.Contains(err.Error(), "replica.selector.class") || !strings.Contains(err.Error(), "NearestSelector") {
		t.Fatalf("unknown selector: %v", err)
	}
	hand := Default()
	hand.ReplicaSelectorClass = "closest"
	if err := hand.Validate(); err == nil || !strings.Contains(err.Error(), "replica.selector.class") {
		t.Fatalf("hand-built unknown selector: %v", err)
	}
	hand.ReplicaSelectorClass = RackAwareAlias
	if err := hand.Validate(); err != nil || !hand.RackAware() {
		t.Fatalf("hand-built alias: %v", err)
	}
}
