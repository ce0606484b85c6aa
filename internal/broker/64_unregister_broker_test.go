package broker

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// unregisteringStore is a Store that keeps registrations.
type unregisteringStore struct {
	Store
	err error
	ids []int32
}

func (s *unregisteringStore) UnregisterBroker(_ context.Context, id int32) error {
	s.ids = append(s.ids, id)
	return s.err
}

func TestUnregisterBrokerAnswers(t *testing.T) {
	// As the controller's ErrBrokerIDNotRegistered: the kerr value wrapped.
	notRegistered := fmt.Errorf("controller: broker ID not registered: %w", kerr.BrokerIDNotRegistered)
	for _, tc := range []struct {
		err  error
		code int16
	}{
		{nil, 0},
		{notRegistered, kerr.BrokerIDNotRegistered.Code},
		{context.DeadlineExceeded, kerr.RequestTimedOut.Code},
	} {
		st := &unregisteringStore{err: tc.err}
		b := &Broker{meta: st, log: slog.New(slog.DiscardHandler)}
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = 7
		resp := b.handleUnregisterBroker(context.Background(), req)
		if resp.ErrorCode != tc.code || len(st.ids) != 1 || st.ids[0] != 7 {
			t.Errorf("%v: code %d, want %d; unregistered %v", tc.err, resp.ErrorCode, tc.code, st.ids)
		}
		if tc.err != nil && (resp.ErrorMessage == nil || *resp.ErrorMessage == "") {
			t.Errorf("%v: no error message", tc.err)
		}
	}
}

// A single node is a one-voter quorum and serves UnregisterBroker over a
// real connection: an unknown ID is BROKER_ID_NOT_REGISTERED.
func TestUnregisterBrokerSingleNode(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	defer tb.stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = 7
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.BrokerIDNotRegistered.Code {
		t.Fatalf("error code %d, want BROKER_ID_NOT_REGISTERED", resp.ErrorCode)
	}
}
