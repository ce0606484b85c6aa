package storage

// Failed returns the error that failed the log (wrapping ErrStorage), or
// nil while it accepts writes.
func (l *Log) Failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}
