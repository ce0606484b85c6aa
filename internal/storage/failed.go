package storage

// Failed returns the error that failed the log or the data directory's
// journal (wrapping ErrStorage), or nil while it accepts writes.
func (l *Log) Failed() error {
	if err := l.ownFailure(); err != nil {
		return err
	}
	return l.journalFailed()
}

// ownFailure returns the error that failed the log itself, or nil.
func (l *Log) ownFailure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}
