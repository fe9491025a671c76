package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

// hostileTimeout is how long the phase waits for an answer: past the
// apiserver's largest webhook timeout (10 s), so that "timed out" means
// the apiserver would have given up too.
const hostileTimeout = 12 * time.Second

// hostileResult is one request of one shape.
type hostileResult struct {
	latency  time.Duration
	outcome  string // "allowed", "denied", "timed out", "error: ..."
	message  int    // bytes of the denial message (Result.Message)
	warnings int    // bytes of the warnings
	response int    // bytes of the whole HTTP answer
}

// hostileLoad sends each hostile shape (HostileShapes) to /mutate and to
// /validate of serve, under the chart's memory limit, one request at a
// time, as an edit of a stored 100-entry aws-auth; it reports latency,
// the size of what comes back and of what serve logged, and serve's peak
// RSS. serve is started again after a shape that killed it or that it did
// not answer in time (it may still be working on it).
func hostileLoad(ctx context.Context, cp *controlPlane, bin, work string, srv *servers, emu *awsemu.Server) (*table, error) {
	shapes := HostileShapes()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	t := &table{title: fmt.Sprintf("Hostile shapes: ~1 MiB aws-auth documents of odd shapes, each sent once to /mutate and once to /validate, serve under the chart's limit (%s); client timeout %s", srv.how, hostileTimeout),
		head: []string{"shape", "bytes", "path", "latency", "answer", "message bytes", "warning bytes", "response bytes", "log bytes", "peak RSS", "serve after"}}
	stored, _ := document(100, 100)
	old := configMap(stored, "1000")
	var serve *proc
	var ca []byte
	defer func() {
		if serve != nil {
			serve.stop()
		}
	}()
	for i, name := range names {
		data := shapes[name]
		size := 0
		for k, v := range data {
			size += len(k) + len(v)
		}
		obj := configMap(data, "1000")
		for _, path := range []string{"/mutate", "/validate"} {
			if serve == nil || !serve.alive() {
				var err error
				if serve, ca, err = startServe(bin, fmt.Sprintf("serve-hostile-%d%s", i, strings.TrimPrefix(path, "/")), work, cp, emu, srv.limits(true), "--resync-interval=1h"); err != nil {
					return nil, err
				}
			}
			say("hostile shape %q (%s) → %s", name, kib(size), path)
			logBefore := fileSize(serve.logPath)
			peakFn := serve.sampleRSS()
			res := sendHostile(ctx, serve, ca, path, review(fmt.Sprintf("hostile-%d-%s", edits.Add(1), path[1:]), admissionv1.Update, obj, old))
			peak := peakFn()
			after := "running"
			if res.outcome == "timed out" {
				serve.stop() // it may still be at it; the next shape gets a fresh one
				after = "restarted (still busy)"
			}
			select {
			case <-serve.exited:
				if after == "running" {
					after = fmt.Sprintf("EXITED (%v)", serve.err)
					if srv.cgroup != nil && srv.cgroup.ooms() > 0 {
						after += ", OOM-killed in the cgroup"
					}
				}
			case <-time.After(100 * time.Millisecond):
			}
			t.add(name, strconv.Itoa(size), path, ms(res.latency), res.outcome, strconv.Itoa(res.message), strconv.Itoa(res.warnings),
				strconv.Itoa(res.response), strconv.FormatInt(fileSize(serve.logPath)-logBefore, 10), mib(peak), after)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return t, nil
}

func sendHostile(ctx context.Context, serve *proc, ca []byte, path string, body []byte) hostileResult {
	hc, err := newClient(ca, 1)
	if err != nil {
		return hostileResult{outcome: "error: " + err.Error()}
	}
	defer hc.CloseIdleConnections()
	hc.Timeout = hostileTimeout
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serve.url()+path+"?timeout=10s", bytes.NewReader(body))
	if err != nil {
		return hostileResult{outcome: "error: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	res := hostileResult{latency: time.Since(start), response: len(raw)}
	var ne interface{ Timeout() bool }
	switch {
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		res.outcome = "timed out"
		return res
	case err != nil:
		res.outcome = "error: " + trunc(err.Error(), 60)
		return res
	case resp.StatusCode != http.StatusOK:
		res.outcome = fmt.Sprintf("HTTP %d", resp.StatusCode)
		return res
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &ar); err != nil || ar.Response == nil {
		res.outcome = "not an AdmissionReview"
		return res
	}
	res.outcome = "denied"
	if ar.Response.Allowed {
		res.outcome = "allowed"
	}
	if ar.Response.Result != nil {
		res.message = len(ar.Response.Result.Message)
	}
	for _, w := range ar.Response.Warnings {
		res.warnings += len(w)
	}
	return res
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
