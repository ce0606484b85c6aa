package broker

// Fetch v4–16. Reads whole batches from each partition's log up to its high
// watermark, within the partition and response byte limits; the first batch
// of the first partition with data is returned even when larger (KIP-74).
// When less than min_bytes is available the fetch waits, off the reader
// goroutine, until a log it reads advances or max_wait passes (long poll).
// Incremental fetch sessions (KIP-227) live in fetch_session.go; v13+ names
// topics by ID. Record bytes are sent with sendfile (fetch_encode.go).
// Consumers on v11+ may also read from followers, and a leader with a
// replica selector may send them to one (KIP-392, follower_fetch.go).

import (
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/storage"
)

// fetchResult is what one partition contributes to a response.
type fetchResult struct {
	sp                *sessionPart
	errCode           int16
	hw, logStart      int64
	leaderID, leaderE int32
	slice             *storage.Slice
	diverging         *kmsg.FetchResponseTopicPartitionDivergingEpoch
	preferred         int32 // preferred read replica (KIP-392); -1: none
}

// fetchParams are the request-wide inputs of readFetch.
type fetchParams struct {
	version  int16
	replica  int32  // the fetching follower's ID; -1 for consumers
	rack     string // the consumer's rack (v11+)
	maxBytes int64
}

// fromFollowerAllowed reports whether a follower may serve this fetch:
// consumer fetches from v11 on, as in Kafka.
func (fp fetchParams) fromFollowerAllowed() bool {
	return fp.replica < 0 && fp.version >= minFollowerFetchVersion
}

func (b *Broker) handleFetch(rc *reqContext, req *kmsg.FetchRequest) result {
	img := b.host.Image()
	var (
		fs      *fetchSession
		targets []*sessionPart
		incr    bool
	)
	fromRequest := func() []*sessionPart {
		var out []*sessionPart
		for _, t := range req.Topics {
			name := t.Topic
			if req.Version >= 13 {
				if mt := img.TopicsByID[t.TopicID]; mt != nil {
					name = mt.Name
				} else {
					name = ""
				}
			}
			for _, rp := range t.Partitions {
				out = append(out, &sessionPart{
					topic: name, topicID: t.TopicID, partition: rp.Partition,
					fetchOffset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes,
					leaderEpoch: rp.CurrentLeaderEpoch, lastEpoch: rp.LastFetchedEpoch, logStart: rp.LogStartOffset,
					sentHW: -1, sentLogStart: -1,
				})
			}
		}
		return out
	}
	switch {
	case req.Version < 7 || req.SessionEpoch == -1:
		if req.SessionID != 0 {
			b.fetchSessions.remove(req.SessionID)
		}
		targets = fromRequest()
	case req.SessionEpoch == 0:
		if req.SessionID != 0 {
			b.fetchSessions.remove(req.SessionID)
		}
		targets = fromRequest()
		if fs = b.fetchSessions.create(); fs != nil {
			for _, t := range targets {
				fs.upsert(*t)
			}
			targets = fs.targets()
		}
	default:
		var code int16
		fs, code = b.fetchSessions.acquire(req.SessionID, req.SessionEpoch)
		if code != 0 {
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = code
			return answer(resp)
		}
		incr = true
		for _, t := range fromRequest() {
			fs.upsert(*t)
		}
		for _, f := range req.ForgottenTopics {
			name := f.Topic
			if req.Version >= 13 {
				name = ""
				if mt := img.TopicsByID[f.TopicID]; mt != nil {
					name = mt.Name
				}
			}
			for _, part := range f.Partitions {
				fs.forget(sessionKey{name, part})
			}
		}
		targets = fs.targets()
	}

	maxBytes := int64(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1 << 31
	}
	deadline := rc.arrived.Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	fp := fetchParams{version: req.Version, replica: req.ReplicaID, rack: req.Rack, maxBytes: maxBytes}
	if req.Version >= 15 {
		fp.replica = req.ReplicaState.ID
	}
	results, size, wake, poll := b.readFetch(img, targets, fp)
	if b.fetchDone(req, results, size) {
		return result{now: b.finishFetch(req, fs, incr, results)}
	}
	releaseAll(results)
	d := newDeferred()
	b.goFunc(func() {
		for {
			if !b.waitFetch(rc.gone, wake, deadline, poll) {
				results, _, _, _ = b.readFetch(b.host.Image(), targets, fp)
				break
			}
			results, size, wake, poll = b.readFetch(b.host.Image(), targets, fp)
			if b.fetchDone(req, results, size) || !b.cfg.Now().Before(deadline) {
				break
			}
			releaseAll(results)
		}
		d.complete(b.finishFetch(req, fs, incr, results))
	})
	return d.result()
}

func (fs *fetchSession) targets() []*sessionPart {
	out := make([]*sessionPart, 0, len(fs.order))
	for _, k := range fs.order {
		out = append(out, fs.parts[k])
	}
	return out
}

// readFetch reads every target once. It returns the results, their total
// size, channels that close when any of the logs read advances, and
// whether a follower partition was read (its high watermark advances
// without a wake-up, so a long poll rechecks it).
// Consumers (replica < 0) read up to the high watermark (on a follower, the
// one learnt from the leader); a follower reads up to the leader's own end
// (its durable offset in log.flush.mode=ack), and its fetch offset reports
// its progress to the LeaderState.
func (b *Broker) readFetch(img *metadata.Image, targets []*sessionPart, fp fetchParams) ([]fetchResult, int64, []<-chan struct{}, bool) {
	results := make([]fetchResult, 0, len(targets))
	wake := []<-chan struct{}{b.meta.Changes()}
	var total int64
	poll := false
	replica, maxBytes := fp.replica, fp.maxBytes
	for _, t := range targets {
		r := fetchResult{sp: t, hw: -1, logStart: -1, leaderID: -1, leaderE: -1, preferred: -1}
		if t.topic == "" {
			r.errCode = kerr.UnknownTopicID.Code
			results = append(results, r)
			continue
		}
		part, mp, err := b.lookup(img, t.topic, t.partition)
		follower := false
		if errors.Is(err, kerr.NotLeaderForPartition) && fp.fromFollowerAllowed() {
			part, err = b.lookupFollower(img, t.topic, mp)
			follower = err == nil
		}
		if err == nil {
			err = checkLeaderEpoch(t.leaderEpoch, mp)
		}
		if mp != nil {
			r.leaderID, r.leaderE = mp.Leader, mp.LeaderEpoch
		}
		if err != nil {
			r.errCode = errCode(err)
			results = append(results, r)
			continue
		}
		l := part.Log()
		var upTo int64
		switch {
		case follower:
			upTo = b.host.FollowerHighWatermark(part)
			wake = append(wake, l.Changed())
			poll = true
		default:
			upTo = part.HighWatermark()
			wake = append(wake, part.Changed()...)
		}
		if replica >= 0 {
			if err := b.host.FollowerFetched(part, replica, t.fetchOffset, t.logStart); err != nil {
				r.errCode = errCode(err)
				results = append(results, r)
				continue
			}
			upTo = l.HighWatermark()
			if d := divergingEpoch(l, t); d != nil {
				r.diverging = d
				r.hw, r.logStart = part.HighWatermark(), l.LogStartOffset()
				results = append(results, r)
				continue
			}
		}
		r.hw, r.logStart = upTo, l.LogStartOffset()
		if replica >= 0 {
			r.hw = part.HighWatermark()
		}
		if !follower && replica < 0 && fp.version >= minFollowerFetchVersion {
			if r.preferred = b.preferredReadReplica(img, part, fp.rack, t.fetchOffset); r.preferred >= 0 {
				// Kafka sends no records with a preferred read replica.
				results = append(results, r)
				continue
			}
		}
		limit := int64(t.maxBytes)
		if rem := maxBytes - total; rem < limit {
			limit = rem
		}
		if t.fetchOffset < upTo && limit > 0 {
			s, err := l.Read(t.fetchOffset, int(limit), upTo)
			switch {
			case err != nil:
				r.errCode = errCode(err)
			case s.Size > limit && total > 0:
				s.Release() // KIP-74: only the very first batch may exceed a limit
			default:
				r.slice = &s
				total += s.Size
			}
		} else if t.fetchOffset > upTo && t.fetchOffset > l.LogEndOffset() || t.fetchOffset < r.logStart {
			r.errCode = kerr.OffsetOutOfRange.Code
		}
		results = append(results, r)
	}
	return results, total, wake, poll
}

func (b *Broker) fetchDone(req *kmsg.FetchRequest, results []fetchResult, size int64) bool {
	if req.MaxWaitMillis <= 0 || size >= int64(req.MinBytes) || b.closing.Load() {
		return true
	}
	for _, r := range results {
		if r.errCode != 0 || r.diverging != nil || r.preferred >= 0 {
			return true
		}
	}
	return false
}

// divergingEpoch is Kafka's check of a follower's last fetched epoch
// (KIP-320/Fetch v12+): when the leader's log ends that epoch before the
// follower's fetch offset, or does not know the epoch, the follower must
// truncate to the returned end offset of the largest epoch ≤ its own.
func divergingEpoch(l *storage.Log, t *sessionPart) *kmsg.FetchResponseTopicPartitionDivergingEpoch {
	if t.lastEpoch < 0 {
		return nil
	}
	epoch, end := l.EndOffsetForEpoch(t.lastEpoch)
	if epoch == t.lastEpoch && end >= t.fetchOffset {
		return nil
	}
	d := kmsg.NewFetchResponseTopicPartitionDivergingEpoch()
	d.Epoch, d.EndOffset = epoch, end
	return &d
}

// waitFetch blocks until a log advances (true) or the deadline passes, the
// connection dies or the broker shuts down (false). With poll it also
// returns true after followerHWPollInterval, to recheck follower high
// watermarks.
func (b *Broker) waitFetch(gone <-chan struct{}, wake []<-chan struct{}, deadline time.Time, poll bool) bool {
	timer := time.NewTimer(deadline.Sub(b.cfg.Now()))
	defer timer.Stop()
	cases := make([]reflect.SelectCase, 0, len(wake)+4)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(b.closedCh)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(gone)},
	)
	if poll {
		recheck := time.NewTimer(followerHWPollInterval)
		defer recheck.Stop()
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(recheck.C)})
	}
	for _, w := range wake {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 3
}

func releaseAll(results []fetchResult) {
	for _, r := range results {
		if r.slice != nil {
			r.slice.Release()
		}
	}
}

// finishFetch builds the response from results.
func (b *Broker) finishFetch(req *kmsg.FetchRequest, fs *fetchSession, incr bool, results []fetchResult) response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if fs != nil {
		resp.SessionID = fs.id
	}
	var recs [][]*storage.Slice
	readCommitted := req.IsolationLevel == 1
	for i := range results {
		r := &results[i]
		if incr && r.errCode == 0 && r.diverging == nil && r.preferred < 0 && (r.slice == nil || r.slice.Size == 0) &&
			r.hw == r.sp.sentHW && r.logStart == r.sp.sentLogStart {
			continue // nothing new for this partition
		}
		r.sp.sentHW, r.sp.sentLogStart = r.hw, r.logStart
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].Topic != r.sp.topic || resp.Topics[n-1].TopicID != r.sp.topicID {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = r.sp.topic, r.sp.topicID
			resp.Topics = append(resp.Topics, rt)
			recs = append(recs, nil)
			n++
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = r.sp.partition
		rp.ErrorCode = r.errCode
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = r.hw, r.hw, r.logStart
		rp.PreferredReadReplica = r.preferred
		if readCommitted {
			rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
		}
		if r.errCode == kerr.NotLeaderForPartition.Code || r.errCode == kerr.FencedLeaderEpoch.Code {
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = r.leaderID, r.leaderE
			if req.Version >= 16 {
				addFetchLeaderEndpoint(b.meta.Image(), resp, r.leaderID)
			}
		}
		if r.diverging != nil {
			rp.DivergingEpoch = *r.diverging
		}
		rp.RecordBatches = []byte{}
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, rp)
		recs[n-1] = append(recs[n-1], r.slice)
	}
	// Results left out of the response hold no data, but release them all
	// the same so that no reference outlives the request.
	for i := range results {
		if s := results[i].slice; s != nil && s.Size == 0 {
			s.Release()
		}
	}
	if fs != nil {
		b.fetchSessions.release(fs)
	}
	if recs == nil {
		recs = [][]*storage.Slice{} // a response with records, if none
	}
	return response{msg: resp, recs: recs}
}

// addFetchLeaderEndpoint lists a leader's endpoint in a Fetch v16+
// response (KIP-951 NodeEndpoints) once.
func addFetchLeaderEndpoint(img *metadata.Image, resp *kmsg.FetchResponse, leader int32) {
	br, ok := img.Brokers[leader]
	if !ok {
		return
	}
	for _, b := range resp.Brokers {
		if b.NodeID == leader {
			return
		}
	}
	resp.Brokers = append(resp.Brokers, kmsg.FetchResponseBroker{NodeID: br.NodeID, Host: br.Host, Port: br.Port, Rack: br.Rack})
}
