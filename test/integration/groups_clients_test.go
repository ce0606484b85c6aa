package integration

// The shared-group scenario of groups_test.go with IBM/sarama's consumer
// group, segmentio/kafka-go's Reader with a GroupID and librdkafka's
// balanced consumer (kcat -G, where one member is also killed).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
)

// ---- IBM/sarama ----

type saramaHandler struct {
	name string
	led  *ledger
}

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim records and marks every message; sarama commits the marks
// every 100ms and, when the session ends, before rejoining.
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.led.add(h.name, msg.Partition, msg.Offset, string(msg.Value))
		sess.MarkMessage(msg, "")
	}
	return nil
}

func startSaramaMember(t *testing.T, b *broker, group, topic, name string, led *ledger) (stop func()) {
	t.Helper()
	cfg := sarama.NewConfig() // default Version on purpose: what users get
	cfg.ClientID = name
	cfg.Consumer.Group.Session.Timeout = groupSession
	cfg.Consumer.Group.Heartbeat.Interval = groupHeartbeat
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{b.Addr}, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// Consume returns at the end of every session (rebalance).
			if err := cg.Consume(ctx, []string{topic}, saramaHandler{name, led}); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				t.Logf("%s: consume: %v", name, err)
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := cg.Close(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestGroupSarama: sarama consumer group members share a topic through a
// leave and a join; offsets committed by sarama end at the log end.
func TestGroupSarama(t *testing.T) {
	b := startGroupBroker(t)
	sharedGroupScenario(t, b, false, func(group, topic, name string, led *ledger) func() {
		return startSaramaMember(t, b, group, topic, name, led)
	})
}

// ---- segmentio/kafka-go ----

func startKafkagoMember(t *testing.T, b *broker, group, topic, name string, led *ledger) (stop func()) {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           []string{b.Addr},
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           100 * time.Millisecond,
		HeartbeatInterval: groupHeartbeat,
		SessionTimeout:    groupSession,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    100 * time.Millisecond,
		CommitInterval:    0, // synchronous commits
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			t.Logf("%s: kafka-go: %s", name, fmt.Sprintf(format, args...))
		}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return // ctx canceled or reader closed
			}
			led.add(name, int32(m.Partition), m.Offset, string(m.Value))
			if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
				t.Logf("%s: commit p%d@%d: %v", name, m.Partition, m.Offset, err)
			}
		}
	}()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := r.Close(); err != nil { // leaves the group
			t.Errorf("%s: close: %v", name, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestGroupKafkaGo: kafka-go Readers with a GroupID (JoinGroup v1/v2,
// range balancing) share a topic through a leave and a join, at least once:
// kafka-go v0.4.51 can send a commit requested at the end of one generation
// after the next generation fetched its offsets (seen in its debug log:
// "stopped commit", join of generation N+1, "starting at offset X", then
// the commit of X+1 goes out with generation N+1), so a record is consumed
// again. Nothing may be skipped and the commits must end at the log end.
func TestGroupKafkaGo(t *testing.T) {
	b := startGroupBroker(t)
	sharedGroupScenario(t, b, true, func(group, topic, name string, led *ledger) func() {
		return startKafkagoMember(t, b, group, topic, name, led)
	})
}

// ---- librdkafka via kcat -G ----

// startKcatMember runs `kcat -G` (librdkafka's balanced consumer, classic
// protocol, auto-commit every 100ms) and feeds its records into led.
func startKcatMember(t *testing.T, b *broker, group, topic, name string, session time.Duration, led *ledger) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("kcat", "-b", b.Addr, "-G", group, topic, "-J", "-u", "-q",
		"-X", "broker.address.family=v4",
		"-X", "client.id="+name,
		"-X", "session.timeout.ms="+strconv.Itoa(int(session.Milliseconds())),
		"-X", "heartbeat.interval.ms="+strconv.Itoa(int(groupHeartbeat.Milliseconds())),
		"-X", "auto.commit.interval.ms=100",
		"-X", "auto.offset.reset=earliest",
		"-X", "fetch.wait.max.ms=100",
		"-X", "partition.assignment.strategy=range",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kcat: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m kcatMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: kcat output %q: %v", name, sc.Text(), err)
				continue
			}
			v := ""
			if m.Payload != nil {
				v = *m.Payload
			}
			led.add(name, m.Partition, m.Offset, v)
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-read
		if t.Failed() {
			t.Logf("%s: kcat stderr:\n%s", name, stderr.Tail(8<<10))
		}
	})
	return cmd
}

// stopKcat ends kcat with SIGTERM, which closes the consumer: a final
// commit and LeaveGroup.
func stopKcat(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("%s: kcat exited after SIGTERM: %v", name, err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("%s: kcat did not exit within 15s of SIGTERM", name)
	}
}

// TestGroupKcat: librdkafka balanced consumers share a topic; one is
// killed with SIGKILL and the survivor takes over its partitions once its
// session expires; another joins; the survivors close cleanly and their
// commits end at the log end. Only records the killed member had consumed
// may be consumed again.
func TestGroupKcat(t *testing.T) {
	requireProgram(t, "kcat")
	b := startGroupBroker(t)
	topic := createTopic(t, b, groupPartitions)
	group := groupName(t)
	led := newLedger()
	watch := watchCommits(t, b, group, topic)
	prod := newStreamProducer(t, b, topic, groupPartitions)
	prod.run(5, 20*time.Millisecond, 3000)

	// Only the member to be killed has the short session: a survivor
	// expiring on a loaded machine would break the exactly-once check.
	a := startKcatMember(t, b, group, topic, "kcat-a", killSession, led)
	bb := startKcatMember(t, b, group, topic, "kcat-b", groupSession, led)
	waitFor(t, 30*time.Second, "both kcat members to consume", func() bool {
		return led.memberCount("kcat-a") > 0 && led.memberCount("kcat-b") > 0
	})
	a.Process.Kill()
	killed := time.Now()
	// Once a's session expired, b owns all partitions: its consumption of
	// every partition moves on.
	n := led.count()
	waitFor(t, 30*time.Second, "consumption to go on after the kill", func() bool { return led.count() > n+600 })
	t.Logf("600 more records consumed %v after SIGKILL", time.Since(killed).Round(time.Millisecond))

	c := startKcatMember(t, b, group, topic, "kcat-c", groupSession, led)
	waitFor(t, 30*time.Second, "kcat-c to consume", func() bool { return led.memberCount("kcat-c") > 0 })

	produced := prod.Stop()
	led.waitCovered(t, produced, 30*time.Second)
	stopKcat(t, "kcat-b", bb)
	stopKcat(t, "kcat-c", c)
	watch.Stop()
	dups := led.check(t, produced, func(first, second consumedRec) bool { return first.member == "kcat-a" })
	t.Logf("%d records, %d consumed, %d again after the kill", prod.total(), led.count(), dups)
	checkCommittedAtEnd(t, b, group, topic, produced)
}
