package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestsServed is the number of Kafka requests b has answered, Fetch
// left out: the other brokers' replica fetchers send those.
func requestsServed(t *testing.T, b *broker) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", b.Addr, err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "streambus_requests_total{"); ok {
			labels, value, _ := strings.Cut(line, "} ")
			if strings.Contains(labels, `api="Fetch"`) {
				continue
			}
			n, _ := strconv.ParseFloat(value, 64)
			total += n
		}
	}
	io.Copy(io.Discard, resp.Body)
	return total
}

// TestPartitionHostFollowsMetadata: a broker opens the logs of a topic
// created through another broker, and deletes them when the topic is
// deleted there, without any client request reaching it (only replica
// fetches from the partitions' leaders): its partition
// host applies metadata images on its own.
func TestPartitionHostFollowsMetadata(t *testing.T) {
	bs := startCluster(t, 3)
	third := bs[2]
	before := requestsServed(t, third)
	cl := clientOn(t, bs[0])
	createTopicVia(t, cl, "hosted", 3, 3)
	dirs := func() []string {
		var found []string
		for p := 0; p < 3; p++ {
			d := filepath.Join(third.DataDir, "logs", fmt.Sprintf("hosted-%d", p))
			if _, err := os.Stat(d); err == nil {
				found = append(found, d)
			}
		}
		return found
	}
	// CreateTopics answers once every live broker serves the change.
	if got := dirs(); len(got) != 3 {
		t.Fatalf("broker 3 holds %d of the 3 partition directories after CreateTopics answered", len(got))
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr("hosted")
	req.Topics = append(req.Topics, rt)
	resp := seedRequest(t, cl, req).(*kmsg.DeleteTopicsResponse)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := dirs(); len(got) != 0 {
		t.Fatalf("broker 3 still holds %v after DeleteTopics answered", got)
	}
	if after := requestsServed(t, third); after != before {
		t.Fatalf("broker 3 answered %v requests during the test; want none", after-before)
	}
}
