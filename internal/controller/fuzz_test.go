package controller

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzDecodeCommand feeds arbitrary log entries to decode and apply: peers
// are trusted, but a corrupt entry must fail cleanly, never panic.
func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte("\x01{\"op\":\"create_topic\",\"name\":\"a\",\"topic_id\":\"AAAAAAAAQACAAAAAAAAAAA\",\"replicas\":[[1]]}"))
	f.Add([]byte("\x01{\"op\":\"register_broker\",\"broker\":{\"node_id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":\"x\"}}"))
	f.Add([]byte("\x01{\"op\":\"allocate_producer_ids\",\"producer_ids\":1000}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st := emptyState()
		st.Brokers[1] = brokerRecord{NodeID: 1, Host: "h", Port: 1, Incarnation: "x"}
		st.Brokers[2] = brokerRecord{NodeID: 2, Host: "h", Port: 2, Incarnation: "y", Fenced: true}
		st, res := applyCommand(st, &command{Op: opCreateTopic, Name: "a", TopicID: "AAAAAAAAQACAAAAAAAAAAA", Replicas: [][]int32{{1, 2}}})
		if res.err != nil {
			t.Fatal(res.err)
		}
		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		next, res := applyCommand(st, c)
		if res.err == nil && next.Version != st.Version+1 {
			t.Fatalf("applied without a version bump")
		}
		if res.err != nil && next != st {
			t.Fatalf("failed command changed the state")
		}
		if _, err := decodeState(mustEncode(t, next)); err != nil {
			t.Fatalf("the state after %s does not survive a snapshot: %v", c.Op, err)
		}
	})
}

func mustEncode(t *testing.T, st *state) []byte {
	t.Helper()
	enc, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// FuzzDecodeState checks that snapshot decoding rejects garbage cleanly and
// that what it accepts re-encodes to something it accepts again.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte("\x01{\"version\":3,\"cluster_id\":\"AAAAAAAAQACAAAAAAAAAAA\",\"producer_id_end\":1000,\"brokers\":[{\"node_id\":1,\"host\":\"h\",\"port\":1,\"incarnation\":\"x\"}],\"topics\":[]}"))
	f.Add([]byte("\x01{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			return
		}
		enc, err := encodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeState(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// FuzzDecodeLog checks the raft.db entry decoder against arbitrary bytes
// and the encode/decode round trip.
func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(&raft.Log{Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte("x")}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var l raft.Log
		if err := decodeLog(data, &l); err != nil {
			return
		}
		var again raft.Log
		if err := decodeLog(encodeLog(&l), &again); err != nil || again.Index != l.Index || string(again.Data) != string(l.Data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestBoltStore(t *testing.T) {
	s, err := openBoltStore(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 5); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 5 {
		t.Fatalf("term %d %v", v, err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: []byte{byte(i)}})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 5 || last != 10 {
		t.Fatalf("range %d..%d", first, last)
	}
	var l raft.Log
	if err := s.GetLog(3, &l); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry: %v", err)
	}
	if err := s.GetLog(7, &l); err != nil || l.Data[0] != 7 || l.Term != 1 {
		t.Fatalf("entry 7: %+v %v", l, err)
	}
}
