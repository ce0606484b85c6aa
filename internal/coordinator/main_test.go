package coordinator

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a Runtime starts must have stopped by Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
