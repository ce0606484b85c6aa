package broker

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a broker starts must have stopped by Shutdown; clients
// and listeners the tests open are closed by their cleanups.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
