package cli

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestHistogramQuantileMatchesSort checks the histogram against its naive
// twin: sorting every value. The histogram answer must lie in the bucket of
// the exact answer, i.e. never below it and at most 1/64 above it.
func TestHistogramQuantileMatchesSort(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := rapid.SliceOfN(rapid.OneOf(
			rapid.Int64Range(0, 300),
			rapid.Int64Range(0, int64(10*time.Second)),
			rapid.Int64Range(0, math.MaxInt64),
		), 1, 500).Draw(t, "values")
		q := rapid.Float64Range(0, 1).Draw(t, "q")
		var h latencyHistogram
		for _, v := range vals {
			h.Record(time.Duration(v))
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		rank := int(math.Ceil(q * float64(len(sorted))))
		rank = max(rank, 1)
		exact := sorted[rank-1]
		got := int64(h.Quantile(q))
		if got < exact || got > histUpper(histIndex(exact)) {
			t.Fatalf("q=%v: got %d, exact %d (bucket upper %d)", q, got, exact, histUpper(histIndex(exact)))
		}
		if exact >= histSub && float64(got-exact) > float64(exact)/64 {
			t.Fatalf("q=%v: got %d, exact %d: error above 1/64", q, got, exact)
		}
		if int64(h.Max()) != sorted[len(sorted)-1] || h.Count() != uint64(len(vals)) {
			t.Fatalf("max %d count %d", h.Max(), h.Count())
		}
	})
}

func TestHistogramBucketsAreContiguous(t *testing.T) {
	// Every bucket's upper bound + 1 starts the next bucket.
	last := histIndex(math.MaxInt64)
	for i := 0; i < last; i++ {
		if got := histIndex(histUpper(i)); got != i {
			t.Fatalf("upper of bucket %d maps to bucket %d", i, got)
		}
		if got := histIndex(histUpper(i) + 1); got != i+1 {
			t.Fatalf("upper of bucket %d + 1 maps to bucket %d", i, got)
		}
	}
	if histUpper(last) != math.MaxInt64 || last >= histBuckets {
		t.Fatalf("last bucket %d of %d, upper %d", last, histBuckets, histUpper(last))
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h latencyHistogram
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	h.Record(-time.Second)
	if h.Quantile(1) != 0 || h.Count() != 1 {
		t.Fatalf("negative duration not recorded as 0: %v", h.Quantile(1))
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	var h latencyHistogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if h.Count() != 4000 || h.Max() != 3999 {
		t.Fatalf("count %d max %d", h.Count(), h.Max())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h latencyHistogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d = d*7 + 13&0xffffff
		}
	})
}
