package recordbatch

import (
	"testing"

	"go.uber.org/goleak"
)

// The codecs are configured to decode synchronously; goleak confirms that
// none of them (nor franz-go's decoding used in the cross-checks) leaves a
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
