package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPEndpoints checks the broker's HTTP contract: /healthz and /readyz
// answer 200 once the broker is up, and /metrics serves the Prometheus text
// format.
func TestHTTPEndpoints(t *testing.T) {
	requireProcess(t) // an external broker's HTTP address is unknown
	b := startBroker(t, brokerOpts{})
	assertServing(t, b) // so request metrics have something to count
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get("http://" + b.HTTPAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: read body: %v", path, err)
		}
		return resp, string(body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := get(path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, body %q", path, resp.StatusCode, body)
		}
	}
	resp, body := get("/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") && !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("GET /metrics: Content-Type %q, want the Prometheus text format", ct)
	}
	if !strings.Contains(body, "# TYPE ") {
		t.Errorf("GET /metrics: no metric families in %.200q", body)
	}
	if resp, _ := get("/no-such-endpoint"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /no-such-endpoint: status %d, want 404", resp.StatusCode)
	}
}
