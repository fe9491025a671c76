package awsauth

import (
	"context"
	"testing"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/hostile"
)

// BenchmarkHostileLint and BenchmarkHostileRender measure the engine on
// each hostile shape (pkg/hostile): every one is ~1 MiB and must be
// answered far inside the webhook's 10 s timeout. findings/op says how
// much the shape makes the engine say.
func BenchmarkHostileLint(b *testing.B) {
	for _, s := range hostile.Shapes() {
		b.Run(s.Name, func(b *testing.B) {
			b.SetBytes(int64(dataSize(s.Data)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = len(Lint(s.Data).Findings)
			}
			b.ReportMetric(float64(n), "findings/op")
		})
	}
}

func BenchmarkHostileRender(b *testing.B) {
	ctx := context.Background()
	opts := Options{NodeRoleARNs: []string{diffNodeRole}}
	for _, s := range hostile.Shapes() {
		b.Run(s.Name, func(b *testing.B) {
			b.SetBytes(int64(dataSize(s.Data)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				res, err := Render(ctx, s.Data, newFakeResolver(), opts)
				if err != nil {
					b.Fatal(err)
				}
				n = len(res.Findings)
			}
			b.ReportMetric(float64(n), "findings/op")
		})
	}
}

func dataSize(data map[string]string) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}
