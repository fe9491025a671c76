package app

import (
	"io"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// newLogger is serve's logger: controller-runtime's (zap.New: JSON with its
// Kubernetes-aware encoder, RFC 3339 times, stack traces from error up),
// without the sampler controller-runtime adds in production mode. That
// sampler writes only the first 100 identical messages of each second and
// then one in 100, and the audit line of every rejection must be written, a
// flood of them included; its counters also hold ~0.45 MiB for good.
// --log-format=console is controller-runtime's development mode, which has
// no sampler.
func newLogger(level zapcore.Level, console bool, w io.Writer) logr.Logger {
	if console {
		return zap.New(zap.Level(level), zap.UseDevMode(true), zap.WriteTo(w))
	}
	ec := uberzap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.RFC3339TimeEncoder
	sink := zapcore.AddSync(w)
	core := zapcore.NewCore(&zap.KubeAwareEncoder{Encoder: zapcore.NewJSONEncoder(ec)}, sink, level)
	return zapr.NewLogger(uberzap.New(core, uberzap.ErrorOutput(sink), uberzap.AddStacktrace(zapcore.ErrorLevel)))
}
