package cli

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// latencyHistogram records durations in log-linear buckets, in the manner of
// HdrHistogram: values below 2^histSubBits ns are exact; above that each
// power-of-two range is split into 2^(histSubBits-1) equal buckets, so a
// reported quantile is at most 1/64 (1.6%) above the true value and never
// below it. Recording is lock-free (promises run on many client goroutines)
// and the whole table is ~30 KiB regardless of how many values are recorded.
type latencyHistogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // ns; overflows only after ~584 years of latency
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // values below are exact
	histHalf    = histSub / 2      // buckets per power of two above
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// histIndex maps a non-negative value to its bucket.
func histIndex(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits // >= 1
	m := int(uint64(v) >> uint(shift))           // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + (m - histHalf)
}

// histUpper is the largest value that maps to bucket i.
func histUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := (i-histSub)/histHalf + 1
	m := uint64((i-histSub)%histHalf + histHalf)
	u := (m+1)<<uint(shift) - 1
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// Record adds one duration; negative durations (clock steps) count as 0.
func (h *latencyHistogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *latencyHistogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded value (exact).
func (h *latencyHistogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the exact mean of the recorded values.
func (h *latencyHistogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the value at quantile q in [0, 1]: the upper bound of the
// bucket holding the value of rank ceil(q*n) (at least 1), capped at Max. It
// reads the counters without stopping writers, so during recording it is a
// close approximation; after recording stops it is exact to the bucket.
func (h *latencyHistogram) Quantile(q float64) time.Duration {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max.Load()))
		}
	}
	return h.Max()
}
