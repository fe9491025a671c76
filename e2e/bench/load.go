package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// loadResult is what one load run measured.
type loadResult struct {
	Requests int
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	lat      []time.Duration
}

func (r loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Pct returns the p-th percentile latency (nearest rank).
func (r loadResult) Pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

func (r loadResult) Max() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[len(r.lat)-1]
}

// client is an HTTPS client as the apiserver is one: TLS to the webhook's
// certificate, HTTP/1.1, connections kept alive, one per concurrent request.
func newClient(caPEM []byte, concurrency int) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in the CA bundle")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// edits hands out request sequence numbers, unique across every run of
// the program, so that no request is ever sent twice.
var edits atomic.Int64

// pairResult is one run: the /mutate and the /validate latencies.
type pairResult struct {
	mutate, validate loadResult
	cpu              time.Duration // the server's CPU time over the measured part, when measured
}

// both is every request of the run, /mutate and /validate together.
func (r pairResult) both() loadResult {
	all := loadResult{Requests: r.mutate.Requests + r.validate.Requests, Errors: r.mutate.Errors + r.validate.Errors,
		FirstErr: r.mutate.FirstErr, Elapsed: r.mutate.Elapsed}
	all.lat = append(append(all.lat, r.mutate.lat...), r.validate.lat...)
	slices.Sort(all.lat)
	return all
}

// merge pools the samples of several runs of one scenario (the rounds).
func merge(runs []pairResult) pairResult {
	var m pairResult
	for _, r := range runs {
		for _, p := range []struct{ into, from *loadResult }{{&m.mutate, &r.mutate}, {&m.validate, &r.validate}} {
			p.into.Requests += p.from.Requests
			p.into.Errors += p.from.Errors
			p.into.Elapsed += p.from.Elapsed
			if p.into.FirstErr == "" {
				p.into.FirstErr = p.from.FirstErr
			}
			p.into.lat = append(p.into.lat, p.from.lat...)
		}
		m.cpu += r.cpu
	}
	slices.Sort(m.mutate.lat)
	slices.Sort(m.validate.lat)
	return m
}

// cpuPerRequest is the server's CPU time per admission request.
func (r pairResult) cpuPerRequest() time.Duration {
	n := r.mutate.Requests + r.validate.Requests + r.mutate.Errors
	if n == 0 {
		return 0
	}
	return r.cpu / time.Duration(n)
}

// load plays the apiserver for concurrency concurrent editors, each
// sending an edit to /mutate and then what it became to /validate, until
// duration has passed (after warmup edits that are not measured). Every
// answer must be an AdmissionReview that allows the request. measure, if
// not nil, is called when the measured part starts, and what it returns
// when it ends (to read the server's CPU time over exactly that part).
func load(ctx context.Context, client *http.Client, base string, w *workload, concurrency, warmup int, duration time.Duration, measure func() func()) pairResult {
	send := func(path string, body []byte) (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path+"?timeout=10s", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
		}
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(raw, &ar); err != nil || ar.Response == nil {
			return 0, fmt.Errorf("not an AdmissionReview: %.200s", raw)
		}
		if !ar.Response.Allowed {
			msg := ""
			if ar.Response.Result != nil {
				msg = ar.Response.Result.Message
			}
			return 0, fmt.Errorf("%s denied: %.300s", path, msg)
		}
		return elapsed, nil
	}

	type worker struct {
		m, v  []time.Duration
		errs  int
		first string
	}
	run := func(wk *worker, until time.Time, count int) {
		for n := 0; (count > 0 && n < count) || (count == 0 && time.Now().Before(until)); n++ {
			if ctx.Err() != nil {
				return
			}
			mb, vb := w.requests(int(edits.Add(1)))
			for _, step := range []struct {
				path string
				body []byte
				into *[]time.Duration
			}{{"/mutate", mb, &wk.m}, {"/validate", vb, &wk.v}} {
				d, err := send(step.path, step.body)
				if err != nil {
					wk.errs++
					if wk.first == "" {
						wk.first = err.Error()
					}
					continue
				}
				*step.into = append(*step.into, d)
			}
		}
	}
	var wg sync.WaitGroup
	// Warm-up: open the connections, let the server's caches fill.
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(&worker{}, time.Time{}, max(1, warmup/concurrency))
		}()
	}
	wg.Wait()

	workers := make([]*worker, concurrency)
	var done func()
	if measure != nil {
		done = measure()
	}
	start := time.Now()
	until := start.Add(duration)
	for i := range workers {
		workers[i] = &worker{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(workers[i], until, 0)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if done != nil {
		done()
	}
	var res pairResult
	for _, wk := range workers {
		res.mutate.lat = append(res.mutate.lat, wk.m...)
		res.validate.lat = append(res.validate.lat, wk.v...)
		res.mutate.Errors += wk.errs
		if res.mutate.FirstErr == "" {
			res.mutate.FirstErr = wk.first
		}
	}
	for _, r := range []*loadResult{&res.mutate, &res.validate} {
		r.Elapsed = elapsed
		r.Requests = len(r.lat)
		slices.Sort(r.lat)
	}
	return res
}
