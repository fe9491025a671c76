// Package awsemu is a small in-process AWS emulator for tests and demos. One
// HTTP server speaks the wire protocols aws-sdk-go-v2 uses for the calls this
// project makes: IAM ListRoles and GetRole and STS GetCallerIdentity (AWS
// Query protocol), EKS access entries (REST-JSON, eks.go), and the EC2
// instance metadata service (IMDSv2). Real SDK
// clients reach it through the SDK's standard endpoint settings (see Env and
// AWSConfig). Faults and delays can be injected, and every request is counted.
package awsemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Dummy credentials: the emulator ignores signatures, but the SDK needs
// something to sign with.
const (
	dummyAccessKeyID     = "emulator-access-key-id"
	dummySecretAccessKey = "emulator-secret-access-key"
)

// Config describes the emulated account. Zero fields get defaults in New.
type Config struct {
	Partition           string // default "aws"
	AccountID           string // default "111122223333"
	Region              string // IMDS placement/region; default us-east-1 (cn-north-1 for aws-cn, us-gov-west-1 for aws-us-gov)
	CallerARN           string // STS GetCallerIdentity Arn; default arn:<p>:sts::<acct>:assumed-role/aws-auth-webhook/emulated
	NodeRoleName        string // IMDS iam/security-credentials/ ; "" = no role attached (404)
	InstanceProfileName string // IMDS iam/info; default = the node role name
	Roles               []Role
	Users               []User       // IAM users (EKS checks access entry principals against IAM)
	EKSClusters         []EKSCluster // EKS clusters, for the access entry API
	MaxPageSize         int          // if >0, ListRoles returns at most this many per page even when MaxItems is larger (real IAM may truncate below MaxItems)
	// Clock times Fault.Delay; default the real clock. Tests step a fake
	// one, so that a delayed answer does not wait on the wall clock.
	Clock clock.Clock
}

// Fault changes how the emulator answers an action.
type Fault struct {
	Code       string        // AWS error code, e.g. "Throttling", "ServiceUnavailable", "InternalFailure"; "" = no error
	HTTPStatus int           // 0 = 400 for Throttling, 503 for ServiceUnavailable, else 500
	Message    string        // default "injected fault"
	Delay      time.Duration // sleep before answering (or before the fault); Delay with empty Code = slow success
	Times      int           // how many calls it applies to; 0 = until ClearFaults
}

type injectedFault struct {
	action string // exact action, or a prefix ending in "*"
	Fault
}

// Server is the emulator. All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	closed chan struct{} // wakes delayed answers on Close
	once   sync.Once

	mu         sync.Mutex
	roles      map[string]Role // by roleKey
	users      map[string]User // by roleKey of the name
	eks        map[string]*eksCluster
	nodeRole   string
	calls      map[string]int
	faults     []injectedFault
	imdsTokens map[string]time.Time // token → expiry
	httpServer *http.Server
	url        string
}

// New returns an emulator for cfg. It serves nothing until Start or StartOn,
// unless its Handler is mounted elsewhere.
func New(cfg Config) *Server {
	if cfg.Partition == "" {
		cfg.Partition = "aws"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "111122223333"
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion(cfg.Partition)
	}
	if cfg.CallerARN == "" {
		cfg.CallerARN = fmt.Sprintf("arn:%s:sts::%s:assumed-role/aws-auth-webhook/emulated", cfg.Partition, cfg.AccountID)
	}
	s := &Server{
		cfg:        cfg,
		closed:     make(chan struct{}),
		nodeRole:   cfg.NodeRoleName,
		calls:      map[string]int{},
		imdsTokens: map[string]time.Time{},
	}
	s.SetRoles(cfg.Roles)
	s.cfg.Roles = nil // the live set is s.roles
	s.users = map[string]User{}
	for _, u := range cfg.Users {
		s.PutUser(u)
	}
	s.initEKS(cfg.EKSClusters)
	s.mux = s.routes()
	return s
}

// defaultRegion keeps the region in the configured partition, so that a
// region-derived ARN or endpoint never mixes partitions.
func defaultRegion(partition string) string {
	switch partition {
	case "aws-cn":
		return "cn-north-1"
	case "aws-us-gov":
		return "us-gov-west-1"
	default:
		return "us-east-1"
	}
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	s.adminRoutes(mux)
	s.eksRoutes(mux)
	mux.HandleFunc("/latest/", s.serveIMDS)
	mux.HandleFunc("/", s.serveQuery)
	return mux
}

// Handler serves IAM, STS, IMDS and the admin API. Mounted on another
// server, URL, Env and AWSConfig do not know its address.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on a random port of 127.0.0.1.
func (s *Server) Start() error { return s.StartOn("127.0.0.1:0") }

// StartOn listens on addr and serves in the background.
func (s *Server) StartOn(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("awsemu: listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if s.httpServer != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("awsemu: already started")
	}
	s.httpServer = hs
	s.url = "http://" + dialableAddr(ln.Addr().(*net.TCPAddr))
	s.mu.Unlock()
	go func() { _ = hs.Serve(ln) }() // ends with ErrServerClosed on Close
	return nil
}

// dialableAddr turns a wildcard listen address into one clients can dial.
func dialableAddr(a *net.TCPAddr) string {
	ip := a.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

// URL is the base URL, e.g. http://127.0.0.1:34567; "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close stops the server and cuts open connections, including delayed ones.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.mu.Lock()
	hs := s.httpServer
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Env returns the environment that points an SDK-based process at the
// emulator: the standard endpoint variables, dummy credentials and the region.
func (s *Server) Env() map[string]string {
	u := s.URL()
	return map[string]string{
		"AWS_ENDPOINT_URL_IAM":              u,
		"AWS_ENDPOINT_URL_STS":              u,
		"AWS_ENDPOINT_URL_EKS":              u,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": u + "/",
		"AWS_ACCESS_KEY_ID":                 dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":             dummySecretAccessKey,
		"AWS_REGION":                        s.cfg.Region,
	}
}

// AWSConfig loads the SDK's default configuration with dummy static
// credentials, the emulator's region, and every service endpoint and the IMDS
// endpoint pointing at the emulator. Retries stay at the SDK default.
func (s *Server) AWSConfig(ctx context.Context) (aws.Config, error) {
	u := s.URL()
	if u == "" {
		return aws.Config{}, errors.New("awsemu: AWSConfig before Start")
	}
	return config.LoadDefaultConfig(ctx,
		config.WithAPIOptions([]func(*middleware.Stack) error{avoidBodyCloseRace}),
		config.WithRegion(s.cfg.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(dummyAccessKeyID, dummySecretAccessKey, "")),
		config.WithBaseEndpoint(u),
		config.WithEC2IMDSEndpoint(u+"/"),
	)
}

// avoidBodyCloseRace works around a race between smithy-go and net/http that
// a local server exposes. Once a response arrives, smithy-go closes the
// request body, whose WriteTo then returns io.EOF; net/http may still be
// draining that body after sending it, takes the EOF for a write error and
// closes the connection under the response being read. The SDK retries, so
// the only trace is an extra call in the counters, about once in a few
// thousand requests. A body without WriteTo makes net/http use Read, which
// reports a closed body as a clean EOF.
func avoidBodyCloseRace(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("awsemuAvoidBodyCloseRace",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				if body, ok := req.GetStream().(io.ReadSeeker); ok {
					req, err := req.SetStream(struct{ io.ReadSeeker }{body})
					if err != nil {
						return middleware.BuildOutput{}, middleware.Metadata{}, err
					}
					in.Request = req
				}
			}
			return next.HandleBuild(ctx, in)
		}), middleware.Before)
}

// Calls returns how many HTTP requests reached action, e.g. "iam:ListRoles",
// "sts:GetCallerIdentity" or "imds:iam/security-credentials/". SDK retries
// count separately.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// AllCalls returns a copy of every counter.
func (s *Server) AllCalls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// ResetCalls zeroes every counter.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.mu.Unlock()
}

func (s *Server) count(action string) {
	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()
}

// InjectFault makes the next calls to action fail or slow down. action is
// named as in Calls; a trailing "*" matches by prefix ("iam:*", "*"). When
// several faults match, the earliest injected one applies.
func (s *Server) InjectFault(action string, f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, injectedFault{action: action, Fault: f})
	s.mu.Unlock()
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// takeFault returns the fault for this call of action and uses up one of its
// Times.
func (s *Server) takeFault(action string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.faults, func(f injectedFault) bool {
		prefix, wildcard := strings.CutSuffix(f.action, "*")
		return f.action == action || (wildcard && strings.HasPrefix(action, prefix))
	})
	if i < 0 {
		return Fault{}, false
	}
	f := s.faults[i].Fault
	if f.Times > 0 {
		s.faults[i].Times--
		if s.faults[i].Times == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
	}
	return f, true
}

// applyFault runs the fault for action, if any. It reports whether the
// request has been dealt with; if not, the caller answers normally.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, action string, writeError func(w http.ResponseWriter, status int, code, message string)) bool {
	f, ok := s.takeFault(action)
	if !ok {
		return false
	}
	if f.Delay > 0 {
		clk := s.cfg.Clock
		if clk == nil {
			clk = clock.RealClock{}
		}
		t := clk.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C():
		case <-r.Context().Done(): // the client gave up: nobody to answer
			return true
		case <-s.closed:
			return true
		}
	}
	if f.Code == "" {
		return false
	}
	msg := f.Message
	if msg == "" {
		msg = "injected fault"
	}
	writeError(w, faultStatus(f), f.Code, msg)
	return true
}

func faultStatus(f Fault) int {
	switch {
	case f.HTTPStatus != 0:
		return f.HTTPStatus
	case f.Code == "Throttling":
		return http.StatusBadRequest // what IAM and STS send with Throttling
	case f.Code == "ServiceUnavailable":
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
