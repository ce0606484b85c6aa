package integration

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupOffsetsSurviveRestart: a member commits after every record it
// consumes; the broker is stopped with SIGTERM (after the member left) or
// killed with SIGKILL (while the member is committing). After the restart
// every acknowledged commit is there, none went backwards, and a new member
// of the group resumes exactly at the committed offsets and drains the
// topic to a lag of 0.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	requireProcess(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			const parts, perPart, commitsBeforeStop = 4, 300, 400
			b := startGroupBroker(t)
			topic := createTopic(t, b, parts)
			group := groupName(t)
			prod := newStreamProducer(t, b, topic, parts)
			if err := prod.produce(testCtx(t, 20*time.Second), perPart); err != nil {
				t.Fatal(err)
			}
			produced := maps32(prod.produced)
			watch := watchCommits(t, b, group, topic)

			cl := newKgo(t, b,
				kgo.ConsumerGroup(group),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.Balancers(kgo.RangeBalancer()), // what the next member speaks
				kgo.DisableAutoCommit(),
				kgo.SessionTimeout(killSession),
				kgo.HeartbeatInterval(groupHeartbeat),
				kgo.RequestRetries(0),
			)
			var (
				mu        sync.Mutex
				acked     = map[int32]int64{} // highest acknowledged commit
				attempted = map[int32]int64{} // highest commit sent
				nAcked    int
				reached   = make(chan struct{})
				once      sync.Once
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				for {
					fs := cl.PollFetches(ctx)
					if ctx.Err() != nil {
						done <- nil
						return
					}
					var err error
					fs.EachRecord(func(r *kgo.Record) {
						if err != nil || ctx.Err() != nil {
							return
						}
						mu.Lock()
						attempted[r.Partition] = r.Offset + 1
						mu.Unlock()
						if err = cl.CommitRecords(ctx, r); err != nil {
							return
						}
						mu.Lock()
						acked[r.Partition] = r.Offset + 1
						if nAcked++; nAcked == commitsBeforeStop {
							once.Do(func() { close(reached) })
						}
						mu.Unlock()
					})
					if err != nil {
						done <- err
						return
					}
				}
			}()
			select {
			case <-reached:
			case <-time.After(30 * time.Second):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("only %d commits acknowledged in 30s", nAcked)
			}
			if sig == syscall.SIGTERM {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					t.Fatalf("committing: %v", err)
				}
				cl.Close() // leaves the group
			}
			code, took := b.Stop(sig, shutdownLimit)
			t.Logf("broker exited with code %d %v after %v", code, took.Round(time.Millisecond), sig)
			if sig == syscall.SIGTERM && code != 0 {
				t.Errorf("exit code after SIGTERM = %d, want 0", code)
			}
			cancel()
			if sig == syscall.SIGKILL {
				err := <-done
				t.Logf("committer stopped by the kill: %v", err)
				// Close tries to leave the group; against a dead broker it
				// gives up after its retries.
				cl.Close()
			}
			mu.Lock()
			t.Logf("%d commits acknowledged before %v; acknowledged %v, last sent %v", nAcked, sig, acked, attempted)
			mu.Unlock()

			b.Restart()
			got := committed(t, b, group, topic)
			for p := int32(0); p < parts; p++ {
				if got[p] < acked[p] || got[p] > attempted[p] {
					t.Errorf("partition %d: committed offset after restart = %d, want the last acknowledged %d (or the unacknowledged %d)",
						p, got[p], acked[p], attempted[p])
				}
			}

			led := newLedger()
			m := startKgoMember(t, b, group, topic, "after-restart", led, kgoMemberOpts{})
			waitFor(t, 30*time.Second, "the new member to reach the log end", func() bool {
				led.mu.Lock()
				defer led.mu.Unlock()
				for p := int32(0); p < parts; p++ {
					rs := led.parts[p]
					if int64(len(rs)) < produced[p]-got[p] {
						return false
					}
				}
				return true
			})
			m.Stop()
			watch.Stop()
			led.mu.Lock()
			for p := int32(0); p < parts; p++ {
				rs := led.parts[p]
				for i, r := range rs {
					if want := got[p] + int64(i); r.offset != want || r.value != recordValue(p, want) {
						t.Errorf("partition %d: record %d after the restart is offset %d (%q), want offset %d: the new member must resume at the committed offset",
							p, i, r.offset, r.value, want)
						break
					}
				}
				if int64(len(rs)) != produced[p]-got[p] {
					t.Errorf("partition %d: the new member consumed %d records, want %d", p, len(rs), produced[p]-got[p])
				}
			}
			led.mu.Unlock()
			checkCommittedAtEnd(t, b, group, topic, produced)
		})
	}
}
