package producerstate

import "testing"

// BenchmarkCheckUpdate measures the per-batch cost on the append path: 1000
// producers each appending in sequence.
func BenchmarkCheckUpdate(b *testing.B) {
	tab := New()
	seqs := make([]int32, 1000)
	var off int64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pid := int64(i % len(seqs))
		h := batch(pid, 0, seqs[pid], 10, off)
		if _, dup, err := tab.Check(h); err != nil || dup {
			b.Fatalf("dup=%v err=%v", dup, err)
		}
		tab.Update(h, int64(i))
		seqs[pid] = nextSeq(h.LastSequence())
		off += 10
	}
}

// BenchmarkMarshal measures a snapshot of 10000 producers with five batches each.
func BenchmarkMarshal(b *testing.B) {
	tab := New()
	for pid := range int64(10000) {
		for _, h := range five(pid, 0) {
			tab.Update(h, 0)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tab.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
