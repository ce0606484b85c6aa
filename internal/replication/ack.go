package replication

// AckWaiter holds acks=all produce requests of one partition until the
// high watermark covers them. Like LeaderState it does no I/O and is not
// safe for concurrent use; T identifies a waiting request for its owner.
// Timeouts (REQUEST_TIMED_OUT) are the owner's: it calls Remove.
type AckWaiter[T comparable] struct {
	waits []ackWait[T]
}

type ackWait[T comparable] struct {
	id       T
	required int64
	minISR   int
}

// AckResult completes one waiting request: Err is nil or
// ErrNotEnoughReplicasAfterAppend.
type AckResult[T comparable] struct {
	ID  T
	Err error
}

// Add waits for requiredOffset (the appended records' last offset + 1)
// with min.insync.replicas minISR.
func (w *AckWaiter[T]) Add(id T, requiredOffset int64, minISR int) {
	w.waits = append(w.waits, ackWait[T]{id, requiredOffset, minISR})
}

// Remove forgets id (timed out, connection gone); false if not waiting.
func (w *AckWaiter[T]) Remove(id T) bool {
	for i, a := range w.waits {
		if a.id == id {
			w.waits = append(w.waits[:i], w.waits[i+1:]...)
			return true
		}
	}
	return false
}

// Len is the number of waiting requests.
func (w *AckWaiter[T]) Len() int { return len(w.waits) }

// Ready removes and returns the requests s now satisfies, in the order
// they were added.
func (w *AckWaiter[T]) Ready(s *LeaderState) []AckResult[T] {
	var out []AckResult[T]
	keep := w.waits[:0]
	for _, a := range w.waits {
		if ok, err := s.Satisfied(a.required, a.minISR); ok {
			out = append(out, AckResult[T]{a.id, err})
		} else {
			keep = append(keep, a)
		}
	}
	clear(w.waits[len(keep):])
	w.waits = keep
	return out
}

// FailAll removes every waiting request with err (leadership lost:
// NOT_LEADER_OR_FOLLOWER).
func (w *AckWaiter[T]) FailAll(err error) []AckResult[T] {
	out := make([]AckResult[T], len(w.waits))
	for i, a := range w.waits {
		out[i] = AckResult[T]{a.id, err}
	}
	w.waits = nil
	return out
}
