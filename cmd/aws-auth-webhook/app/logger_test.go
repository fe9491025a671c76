package app

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// Every audit line is written, however many identical ones a flood of
// rejections brings in one second (controller-runtime's production logger
// keeps 100 a second, then one in 100).
func TestLoggerWritesEveryIdenticalLine(t *testing.T) {
	var out bytes.Buffer
	log := newLogger(zapcore.InfoLevel, false, &out)
	const n = 1000
	start := time.Now()
	for range n {
		log.Info("admission rejected", "audit", true, "reason", "duplicate ARN")
	}
	log.V(1).Info("a debug line, below --log-level=info")
	log.Error(nil, "an error line")
	if time.Since(start) > time.Second {
		t.Logf("the lines took %s, more than the sampler's one-second window", time.Since(start))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != n+1 {
		t.Fatalf("%d lines written, want %d identical ones and the error", len(lines), n+1)
	}
	for i, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, l)
		}
		if _, err := time.Parse(time.RFC3339, rec["ts"].(string)); err != nil {
			t.Fatalf("line %d: ts %v is not RFC 3339", i, rec["ts"])
		}
		_, stack := rec["stacktrace"]
		if isErr := i == n; rec["level"] != map[bool]string{false: "info", true: "error"}[isErr] || stack != isErr {
			t.Fatalf("line %d: level %v, stack trace %v: %s", i, rec["level"], stack, l)
		}
	}
}
