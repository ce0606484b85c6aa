package metadata

import (
	"errors"
	"maps"
	"slices"
)

// Topic returns the topic named name, or nil if there is none (or i is nil).
// The result is shared: do not modify it.
func (i *Image) Topic(name string) *Topic {
	if i == nil {
		return nil
	}
	return i.Topics[name]
}

// TopicByID returns the topic with the given ID, or nil if there is none.
// The result is shared: do not modify it.
func (i *Image) TopicByID(id [16]byte) *Topic {
	if i == nil {
		return nil
	}
	return i.TopicsByID[id]
}

// Partition returns partition p of topic, and false if either does not exist.
// The slices in the result are shared: do not modify them.
func (i *Image) Partition(topic string, p int32) (Partition, bool) {
	t := i.Topic(topic)
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[p], true
}

// TopicNames returns the names of all topics in ascending order, as a new
// slice the caller owns.
func (i *Image) TopicNames() []string {
	if i == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(i.Topics))
}

// ErrInvalidRequest is returned when a request is self-contradictory, as
// Kafka's INVALID_REQUEST: a manual assignment together with a partition
// count or replication factor, or the same config key twice in one
// AlterTopicConfigs call.
var ErrInvalidRequest = errors.New("metadata: invalid request")

// kafkaError pairs one of the package's sentinel errors with the message
// Kafka would put in the response's error message field.
type kafkaError struct {
	kind  error  // a sentinel such as ErrInvalidPartitions
	msg   string // Kafka-style, user-facing
	cause error  // optional underlying error, e.g. from the config validator
}

func (e *kafkaError) Error() string { return e.kind.Error() + ": " + e.msg }

func (e *kafkaError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func newError(kind error, msg string) error { return &kafkaError{kind: kind, msg: msg} }

// ErrorMessage returns the user-facing message for err, suitable for the
// error-message field of a Kafka response: for errors returned by a Store
// method it is the Kafka-style text without the "metadata: ..." prefix (for
// example "Replication factor must be larger than 0."); for any other
// error it is err.Error(). It returns "" for nil.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var ke *kafkaError
	if errors.As(err, &ke) {
		return ke.msg
	}
	return err.Error()
}
