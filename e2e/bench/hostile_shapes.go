package main

import "github.com/aws-auth-webhook/aws-auth-webhook/pkg/hostile"

// HostileShapes returns the hostile aws-auth documents of issue 11 (point
// 4), each ~1 MiB, by name: the same shapes the engine's and the
// handlers' benchmarks measure (BenchmarkHostileLint, BenchmarkHostileRender
// in pkg/awsauth, BenchmarkHostileValidate in pkg/admission).
func HostileShapes() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, s := range hostile.Shapes() {
		out[s.Name] = s.Data
	}
	return out
}
