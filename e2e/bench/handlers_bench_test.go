package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	admissionh "github.com/aws-auth-webhook/aws-auth-webhook/pkg/admission"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// BenchmarkHandlers is the admission handlers' own cost per request (no
// HTTP, no TLS), for profiling: go test -run '^$' -bench Handlers
// -cpuprofile cpu.out ./e2e/bench/
func BenchmarkHandlers(b *testing.B) {
	ctx := context.Background()
	big, _ := document(-1, 4000)
	emu, err := startEmulator(usedPS(big) + extraPS)
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	awsCfg, _ := emu.AWSConfig(ctx)
	resolver := awsidentity.New(awsCfg, awsidentity.Options{})
	for _, sc := range []struct {
		name string
		n    int
	}{{"entries=100", 100}, {"entries=1MiB", -1}} {
		// Built inside the sub-benchmark, so that -bench entries=100 does
		// not read the 1 MiB document too and -cpuprofile shows the
		// requests, not the setup.
		b.Run(sc.name, func(b *testing.B) {
			w, err := buildWorkload(ctx, sc.name, sc.n, resolver)
			if err != nil {
				b.Fatal(err)
			}
			h := admissionh.New(admissionh.Config{Namespace: "kube-system", Name: "aws-auth", NodeRoleARNs: []string{nodeRole}},
				resolver, audit.New(nil, logr.Discard(), prometheus.NewRegistry()), logr.Discard())
			decode := func(body []byte) admission.Request {
				var ar admissionv1.AdmissionReview
				if err := json.Unmarshal(body, &ar); err != nil {
					b.Fatal(err)
				}
				return admission.Request{AdmissionRequest: *ar.Request}
			}
			for _, path := range []string{"mutate", "validate"} {
				b.Run(path, func(b *testing.B) {
					reqs := make([]admission.Request, 64)
					for i := range reqs {
						m, v := w.requests(int(edits.Add(1)))
						if path == "mutate" {
							reqs[i] = decode(m)
						} else {
							reqs[i] = decode(v)
							h.Mutator().Handle(ctx, decode(m)) // what the apiserver does first
						}
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						handler := h.Mutator()
						if path == "validate" {
							handler = h.Validator()
						}
						if resp := handler.Handle(ctx, reqs[i%len(reqs)]); !resp.Allowed {
							b.Fatalf("denied: %v", resp.Result)
						}
					}
				})
			}
		})
	}
}
