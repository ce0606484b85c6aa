package group

import (
	"testing"

	"go.uber.org/goleak"
)

// The coordinator is a state machine with no goroutines of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
