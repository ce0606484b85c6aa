package metadata

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// MaxTopicNameLength is Kafka's limit on topic names (255 minus room for a
// partition-number suffix in directory names).
const MaxTopicNameLength = 249

// ValidateTopicName checks name against Kafka's rules: 1 to 249 characters
// of ASCII letters, digits, '.', '_' and '-', and not "." or "..". The error
// wraps ErrInvalidTopic and carries Kafka's message (see ErrorMessage).
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return newError(ErrInvalidTopic, "Topic name is illegal, it can't be empty")
	case name == "." || name == "..":
		return newError(ErrInvalidTopic, `Topic name cannot be "." or ".."`)
	case len(name) > MaxTopicNameLength:
		return newError(ErrInvalidTopic, fmt.Sprintf(
			"Topic name is illegal, it can't be longer than %d characters, topic name: %s", MaxTopicNameLength, name))
	}
	for i := 0; i < len(name); i++ {
		if !legalTopicChar(name[i]) {
			return newError(ErrInvalidTopic, fmt.Sprintf(
				"Topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name))
		}
	}
	return nil
}

func legalTopicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// IsInternalTopic reports whether name is an internal topic
// (__consumer_offsets, __transaction_state, ...): any name starting "__".
func IsInternalTopic(name string) bool { return strings.HasPrefix(name, "__") }

// collisionKey maps a topic name to the form under which Kafka's metrics
// names collide: '.' and '_' are interchangeable there.
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// FormatID renders a 16-byte cluster or topic ID as Kafka does: unpadded
// base64url, 22 characters.
func FormatID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// ParseID is the inverse of FormatID.
func ParseID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 22 {
		return id, fmt.Errorf("metadata: ID %q is not 22 base64url characters", s)
	}
	n, err := base64.RawURLEncoding.Strict().Decode(id[:], []byte(s))
	if err != nil || n != 16 {
		return [16]byte{}, fmt.Errorf("metadata: ID %q is not 22 base64url characters", s)
	}
	return id, nil
}

// newID returns a random version-4 UUID from r, skipping the values Kafka
// reserves or avoids: all-zero (no ID), 0...01 (the metadata topic), and
// IDs whose text starts with '-' (mistaken for command-line flags). The
// version bits already exclude the first two; the checks keep that true if
// the bit-setting ever changes.
func newID(r io.Reader) ([16]byte, error) {
	for attempt := 0; attempt < 64; attempt++ {
		var id [16]byte
		if _, err := io.ReadFull(r, id[:]); err != nil {
			return [16]byte{}, fmt.Errorf("metadata: generate ID: %w", err)
		}
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
		if id == ([16]byte{}) || id == ([16]byte{15: 1}) || id[0]>>2 == 62 {
			continue // 62 is '-' in base64url
		}
		return id, nil
	}
	return [16]byte{}, fmt.Errorf("metadata: generate ID: random source keeps producing reserved IDs")
}
