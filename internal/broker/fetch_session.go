package broker

// Incremental fetch sessions (KIP-227). A client opens a session with a
// full fetch at epoch 0; later fetches at epoch 1, 2, … list only the
// partitions that changed and the ones to forget, and the response lists
// only partitions with news (records, an error, or a moved high watermark
// or log start offset). Sessions live in a bounded cache; the least
// recently used one is evicted when it is full (Kafka's
// max.incremental.fetch.session.cache.slots, default 1000).

import (
	"container/list"
	"sync"
)

type sessionKey struct {
	topic     string
	partition int32
}

// sessionPart is one partition of a session: what the client asked for
// last and what it was last told.
type sessionPart struct {
	topic       string
	topicID     [16]byte
	partition   int32
	fetchOffset int64
	maxBytes    int32
	leaderEpoch int32
	lastEpoch   int32 // v12+ last_fetched_epoch of a follower; -1 if none
	logStart    int64 // v5+ log_start_offset of a follower; -1 for consumers

	sentHW, sentLogStart int64 // -1 before the first answer
}

type fetchSession struct {
	id    int32
	epoch int32 // next epoch expected
	parts map[sessionKey]*sessionPart
	order []sessionKey // insertion order, for stable responses
	elem  *list.Element
	inUse bool // a fetch of this session is running
}

type fetchSessions struct {
	mu   sync.Mutex
	max  int
	next int32
	byID map[int32]*fetchSession
	lru  *list.List // front = most recently used
}

func newFetchSessions(max int) *fetchSessions {
	return &fetchSessions{max: max, next: 1, byID: make(map[int32]*fetchSession), lru: list.New()}
}

// create registers a new session, evicting the least recently used idle
// one when full. It returns nil when no slot can be had (the fetch is
// then served without a session, ID 0).
func (s *fetchSessions) create() *fetchSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		e := s.lru.Back()
		for e != nil && e.Value.(*fetchSession).inUse {
			e = e.Prev()
		}
		if e == nil {
			return nil
		}
		old := e.Value.(*fetchSession)
		s.lru.Remove(e)
		delete(s.byID, old.id)
	}
	id := s.next
	for s.byID[id] != nil || id <= 0 {
		id++
		if id <= 0 {
			id = 1
		}
	}
	s.next = id + 1
	fs := &fetchSession{id: id, epoch: 0, parts: make(map[sessionKey]*sessionPart), inUse: true}
	fs.elem = s.lru.PushFront(fs)
	s.byID[id] = fs
	return fs
}

// acquire finds a session for an incremental fetch and checks its epoch.
func (s *fetchSessions) acquire(id, epoch int32) (*fetchSession, int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.byID[id]
	if fs == nil {
		return nil, 70 // FETCH_SESSION_ID_NOT_FOUND
	}
	if fs.inUse || fs.epoch != epoch {
		return nil, 71 // INVALID_FETCH_SESSION_EPOCH
	}
	fs.inUse = true
	s.lru.MoveToFront(fs.elem)
	return fs, 0
}

// release ends a fetch of the session and advances its epoch.
func (s *fetchSessions) release(fs *fetchSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs.inUse = false
	fs.epoch++
	if fs.epoch <= 0 {
		fs.epoch = 1
	}
}

func (s *fetchSessions) remove(id int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fs := s.byID[id]; fs != nil {
		s.lru.Remove(fs.elem)
		delete(s.byID, id)
	}
}

func (fs *fetchSession) upsert(sp sessionPart) {
	k := sessionKey{sp.topic, sp.partition}
	if cur := fs.parts[k]; cur != nil {
		cur.fetchOffset, cur.maxBytes, cur.leaderEpoch, cur.topicID, cur.lastEpoch = sp.fetchOffset, sp.maxBytes, sp.leaderEpoch, sp.topicID, sp.lastEpoch
		cur.logStart = sp.logStart
		return
	}
	sp.sentHW, sp.sentLogStart = -1, -1
	fs.parts[k] = &sp
	fs.order = append(fs.order, k)
}

func (fs *fetchSession) forget(k sessionKey) {
	if fs.parts[k] == nil {
		return
	}
	delete(fs.parts, k)
	for i, o := range fs.order {
		if o == k {
			fs.order = append(fs.order[:i], fs.order[i+1:]...)
			break
		}
	}
}
