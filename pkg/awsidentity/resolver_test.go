package awsidentity

import (
	clocktesting "k8s.io/utils/clock/testing"

	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsemu"
)

const acct = "111122223333"

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// newFakeClock drives cache expiry and the rate limit without sleeping.
func newFakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(mustTime("2030-01-01T00:00:00Z"))
}

func startEmu(t *testing.T, cfg awsemu.Config) *awsemu.Server {
	t.Helper()
	s := awsemu.New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testOptions keep retries fast and the client-side rate limit out of the
// way; tests about those settings override them.
func testOptions(clock *clocktesting.FakeClock) Options {
	o := Options{
		RetryMaxBackoff:      5 * time.Millisecond,
		IAMRequestsPerSecond: 10000,
		IAMBurst:             10000,
	}
	if clock != nil {
		o.Clock = clock
	}
	return o
}

func newResolver(t *testing.T, s *awsemu.Server, opts Options) *Resolver {
	t.Helper()
	cfg, err := s.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, opts)
}

func roleARN(partition, name string) string {
	return "arn:" + partition + ":iam::" + acct + ":role/" + name
}

func lookup(t *testing.T, r *Resolver, names ...string) map[string]string {
	t.Helper()
	res, err := r.PermissionSetRoles(context.Background(), names)
	if err != nil {
		t.Fatalf("PermissionSetRoles(%v): %v", names, err)
	}
	if res.Stale != nil {
		t.Fatalf("PermissionSetRoles(%v): unexpected Stale: %v", names, res.Stale)
	}
	return res.ARNs
}

func wantCalls(t *testing.T, s *awsemu.Server, action string, want int) {
	t.Helper()
	if got := s.Calls(action); got != want {
		t.Fatalf("%s calls = %d, want %d (all: %v)", action, got, want, s.AllCalls())
	}
}

// wantIAM asserts that exactly ok ListRoles requests succeeded, and that
// the emulator saw exactly the requests the resolver sent (so the resolver's
// own counters are exact too).
//
// Why not just count emulator calls: the SDK over net/http now and then
// loses a 200 response body to a closed connection ("failed to decode
// response body ... use of closed network connection", also seen with a
// bare iam.Client against a plain httptest server; cf.
// aws/aws-sdk-go-v2#1825, #2935) and its retryer sends the request again.
// Both sides count that retry, so this check stays exact.
func wantIAM(t *testing.T, s *awsemu.Server, r *Resolver, ok int) {
	t.Helper()
	st := r.Stats()
	if got := s.Calls("iam:ListRoles"); got != int(st.IAMRequests) {
		t.Fatalf("emulator saw %d ListRoles requests, resolver sent %d", got, st.IAMRequests)
	}
	if got := int(st.IAMRequests - st.IAMErrors); got != ok {
		t.Fatalf("successful ListRoles requests = %d, want %d (stats %+v)", got, ok, st)
	}
}

// wantSTS is wantIAM for GetCallerIdentity.
func wantSTS(t *testing.T, s *awsemu.Server, r *Resolver, ok int) {
	t.Helper()
	st := r.Stats()
	if got := s.Calls("sts:GetCallerIdentity"); got != int(st.STSRequests) {
		t.Fatalf("emulator saw %d GetCallerIdentity requests, resolver sent %d", got, st.STSRequests)
	}
	if got := int(st.STSRequests - st.STSErrors); got != ok {
		t.Fatalf("successful GetCallerIdentity requests = %d, want %d (stats %+v)", got, ok, st)
	}
}

var trickyRoles = []awsemu.Role{
	awsemu.SSORole("Admin", "1111111111111111", ""),
	awsemu.SSORole("Admin_ReadOnly", "2222222222222222", "eu-west-1"),
	awsemu.SSORole("AdminX", "3333333333333333", ""),
	awsemu.SSORole("Dev+Ops", "4444444444444444", ""),
	awsemu.SSORole("DevOps", "5555555555555555", ""),
	awsemu.SSORole("Admin.Ops", "6666666666666666", "ap-southeast-2"),
	awsemu.SSORole("AdminXOps", "7777777777777777", ""),
	awsemu.SSORole("a=b,c@d-e_f", "8888888888888888", ""),
	awsemu.SSORole("a=b,c@d-e", "9999999999999999", ""),
	// Not SSO roles: outside the path, or not named like one.
	{Name: "AWSReservedSSO_Ghost_aaaaaaaaaaaaaaaa", Path: "/"},
	{Name: "eks-node-role", Path: "/"},
}

func TestOneListingResolvesManyNames(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(nil))

	names := []string{"Admin", "Admin_ReadOnly", "Dev+Ops", "Admin.Ops", "a=b,c@d-e_f", "a=b,c@d-e", "Missing", "Ghost", "Admin*", ".*"}
	res, err := r.PermissionSetRoles(context.Background(), names)
	if err != nil || res.Stale != nil {
		t.Fatalf("err=%v stale=%v", err, res.Stale)
	}
	want := map[string]string{
		"Admin":          roleARN("aws", "AWSReservedSSO_Admin_1111111111111111"),
		"Admin_ReadOnly": roleARN("aws", "AWSReservedSSO_Admin_ReadOnly_2222222222222222"), // regional path stripped
		"Dev+Ops":        roleARN("aws", "AWSReservedSSO_Dev+Ops_4444444444444444"),
		"Admin.Ops":      roleARN("aws", "AWSReservedSSO_Admin.Ops_6666666666666666"),
		"a=b,c@d-e_f":    roleARN("aws", "AWSReservedSSO_a=b,c@d-e_f_8888888888888888"),
		"a=b,c@d-e":      roleARN("aws", "AWSReservedSSO_a=b,c@d-e_9999999999999999"),
	}
	if fmt.Sprint(res.ARNs) != fmt.Sprint(want) {
		t.Errorf("ARNs =\n%v\nwant\n%v", res.ARNs, want)
	}
	wantExisting := []string{"Admin", "Admin.Ops", "AdminX", "AdminXOps", "Admin_ReadOnly", "Dev+Ops", "DevOps", "a=b,c@d-e", "a=b,c@d-e_f"}
	if !slices.Equal(res.Existing, wantExisting) {
		t.Errorf("Existing = %v, want %v", res.Existing, wantExisting)
	}
	wantIAM(t, s, r, 1)
	// The listing's partition and account come from IAM's own ARNs: no STS.
	wantSTS(t, s, r, 0)

	// The caller may scribble on the answer without harming the cache.
	res.Existing[0] = "x"
	res.ARNs["Admin"] = "x"
	again, err := r.PermissionSetRoles(context.Background(), []string{"Admin", "NoSuchSet"})
	if err != nil || again.ARNs["Admin"] != want["Admin"] || len(again.Existing) == 0 || again.Existing[0] != "Admin" {
		t.Fatalf("cache was mutated through an answer: %+v %v", again, err)
	}
	// Existing is for the error about a name without a role: when every
	// name has one, it is left out.
	if all, err := r.PermissionSetRoles(context.Background(), []string{"Admin", "DevOps"}); err != nil || len(all.ARNs) != 2 || all.Existing != nil {
		t.Errorf("every name resolved: %+v %v, want both ARNs and no Existing", all, err)
	}
}

func TestPaginationFollowsMarker(t *testing.T) {
	t.Parallel()
	const n = 2500
	roles := make([]awsemu.Role, 0, n+10)
	names := make([]string, 0, n)
	for i := range n {
		ps := fmt.Sprintf("PS_%04d", i)
		names = append(names, ps)
		region := ""
		if i%3 == 0 {
			region = "eu-central-1"
		}
		roles = append(roles, awsemu.SSORole(ps, fmt.Sprintf("%016x", i), region))
	}
	for i := range 10 {
		roles = append(roles, awsemu.Role{Name: fmt.Sprintf("app-%d", i), Path: "/"})
	}
	// IAM may truncate below MaxItems: 300 per page although we ask 1000.
	s := startEmu(t, awsemu.Config{Roles: roles, MaxPageSize: 300})
	r := newResolver(t, s, testOptions(nil))

	got := lookup(t, r, names...)
	if len(got) != n {
		t.Fatalf("resolved %d of %d", len(got), n)
	}
	for i, ps := range names {
		if want := roleARN("aws", fmt.Sprintf("AWSReservedSSO_%s_%016x", ps, i)); got[ps] != want {
			t.Fatalf("%s = %s, want %s", ps, got[ps], want)
		}
	}
	wantIAM(t, s, r, (n+299)/300) // 9 pages, one walk
	if st := r.Stats(); st.Listings != 1 || st.PermissionSets != n {
		t.Fatalf("stats = %+v", st)
	}
}

func TestWarmCacheMakesNoCalls(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(clock))

	lookup(t, r, "Admin", "Dev+Ops")
	before := s.AllCalls()
	for range 100 {
		clock.Step(time.Second)
		got := lookup(t, r, "Admin", "Dev+Ops")
		if got["Admin"] != roleARN("aws", "AWSReservedSSO_Admin_1111111111111111") {
			t.Fatal(got)
		}
	}
	// Names never asked for before are in the cache too: the listing
	// filled it with every permission set.
	lookup(t, r, "a=b,c@d-e_f", "AdminXOps")
	// No names at all: nothing to ask.
	lookup(t, r)
	if c := s.AllCalls(); fmt.Sprint(c) != fmt.Sprint(before) {
		t.Fatalf("warm cache made calls: %v, then %v", before, c)
	}
	if st := r.Stats(); st.CacheHits != 102 || st.CacheMisses != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestConcurrentMissesShareOneListing(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(nil))
	// Hold the first page long enough that every goroutine piles up on it.
	s.InjectFault("iam:ListRoles", awsemu.Fault{Delay: 200 * time.Millisecond, Times: 1})

	const n = 50
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := []string{"Admin", "Dev+Ops", "a=b,c@d-e_f", "Missing"}[i%4]
			res, err := r.PermissionSetRoles(context.Background(), []string{name})
			switch {
			case err != nil:
				errs <- err
			case name == "Missing" && len(res.ARNs) != 0:
				errs <- fmt.Errorf("Missing resolved: %v", res.ARNs)
			case name != "Missing" && res.ARNs[name] == "":
				errs <- fmt.Errorf("%s not resolved", name)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantIAM(t, s, r, 1)
	if st := r.Stats(); st.Listings != 1 {
		t.Fatalf("listings = %d", st.Listings)
	}
}

func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(clock)
	opts.TTL = time.Minute
	r := newResolver(t, s, opts)

	lookup(t, r, "Admin")
	wantIAM(t, s, r, 1)
	clock.Step(time.Minute - time.Second)
	lookup(t, r, "Admin")
	wantIAM(t, s, r, 1)
	clock.Step(time.Second)
	lookup(t, r, "Admin")
	wantIAM(t, s, r, 2)
	lookup(t, r, "Admin")
	wantIAM(t, s, r, 2)
}

func TestDefaultTTLIsFiveMinutes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(clock))
	lookup(t, r, "Admin")
	clock.Step(5*time.Minute - time.Millisecond)
	lookup(t, r, "Admin")
	wantIAM(t, s, r, 1)
	clock.Step(time.Millisecond)
	lookup(t, r, "Admin")
	wantIAM(t, s, r, 2)
}

func TestRotatedSuffixAfterRefresh(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(nil))

	old := lookup(t, r, "Admin")["Admin"]
	newName, err := s.RotatePermissionSet("Admin")
	if err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "Admin")["Admin"]; got != old {
		t.Fatalf("before Refresh: %s, want the cached %s", got, old)
	}
	wantIAM(t, s, r, 1)

	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantIAM(t, s, r, 2)
	if got, want := lookup(t, r, "Admin")["Admin"], roleARN("aws", newName); got != want || got == old {
		t.Fatalf("after Refresh: %s, want %s", got, want)
	}
	wantIAM(t, s, r, 2)
}

func TestRefreshDropsDeletedPermissionSets(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(nil))
	lookup(t, r, "DevOps")
	s.DeleteRole("AWSReservedSSO_DevOps_5555555555555555")
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := r.PermissionSetRoles(context.Background(), []string{"DevOps"})
	if err != nil || len(res.ARNs) != 0 || slices.Contains(res.Existing, "DevOps") {
		t.Fatalf("deleted permission set still resolves: %+v %v", res, err)
	}
	wantIAM(t, s, r, 2)
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(nil))
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "Throttling", HTTPStatus: 400, Times: 2})

	if got := lookup(t, r, "Admin")["Admin"]; got == "" {
		t.Fatal("not resolved")
	}
	wantIAM(t, s, r, 1)
	if st := r.Stats(); st.IAMThrottles != 2 || st.Listings != 1 || st.ListingErrors != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestThrottlingGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(nil)
	opts.RetryMaxAttempts = 3
	r := newResolver(t, s, opts)
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "Throttling", HTTPStatus: 400})

	_, err := r.PermissionSetRoles(context.Background(), []string{"Admin"})
	if err == nil || !strings.Contains(err.Error(), "iam:ListRoles") || !strings.Contains(err.Error(), "Throttling") {
		t.Fatalf("err = %v", err)
	}
	wantIAM(t, s, r, 0)
	if st := r.Stats(); st.IAMRequests != 3 || st.IAMThrottles != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestIAMFailureAfterGoodListingServesStale(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(clock))

	good := lookup(t, r, "Admin", "Dev+Ops")
	clock.Step(10 * time.Minute) // far past the TTL: the LRU entries have expired
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "ServiceUnavailable", HTTPStatus: 503})
	before := r.Stats().IAMRequests

	res, err := r.PermissionSetRoles(context.Background(), []string{"Admin", "Dev+Ops"})
	if err != nil {
		t.Fatalf("stale answer must not be an error when every name is known: %v", err)
	}
	if res.Stale == nil || !strings.Contains(res.Stale.Error(), "iam:ListRoles") {
		t.Fatalf("Stale = %v", res.Stale)
	}
	if fmt.Sprint(res.ARNs) != fmt.Sprint(good) || res.Existing != nil { // every name known: no list for an error
		t.Fatalf("stale answer = %+v, want %v", res, good)
	}
	wantIAM(t, s, r, 1)
	if d := r.Stats().IAMRequests - before; d != DefaultRetryMaxAttempts {
		t.Fatalf("%d requests, want %d: 5xx retried, then given up", d, DefaultRetryMaxAttempts)
	}

	// A name the old listing does not have cannot be called nonexistent.
	res, err = r.PermissionSetRoles(context.Background(), []string{"Admin", "BrandNew"})
	if err == nil || !strings.Contains(err.Error(), "BrandNew") || res.Stale == nil || res.ARNs["Admin"] != good["Admin"] {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if st := r.Stats(); st.StaleServes != 2 || st.ListingErrors != 2 {
		t.Fatalf("stats = %+v", st)
	}

	// IAM is back: fresh again.
	s.ClearFaults()
	lookup(t, r, "Admin")
}

func TestIAMDownWithColdCacheIsAnError(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(nil)
	opts.RetryMaxAttempts = 2
	r := newResolver(t, s, opts)
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "InternalFailure", HTTPStatus: 500})

	res, err := r.PermissionSetRoles(context.Background(), []string{"Admin", "Missing"})
	if err == nil || !strings.HasPrefix(err.Error(), "iam:ListRoles") {
		t.Fatalf("err = %v", err)
	}
	// Per the awsauth.Resolver contract, err != nil means the missing names
	// are unknown, not wrong; and nothing may look resolved.
	if len(res.ARNs) != 0 || len(res.Existing) != 0 {
		t.Fatalf("res = %+v", res)
	}
	// The failure is not cached: the next call asks again.
	s.ClearFaults()
	if lookup(t, r, "Admin")["Admin"] == "" {
		t.Fatal("not resolved after recovery")
	}
}

func TestCallerDeadlineServesStaleWhileListingContinues(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(clock))
	old := lookup(t, r, "Admin")["Admin"]
	newName, err := s.RotatePermissionSet("Admin")
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Hour)
	s.InjectFault("iam:ListRoles", awsemu.Fault{Delay: 300 * time.Millisecond, Times: 1})

	// An admission request with a tight budget gets the old answer, flagged.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res, err := r.PermissionSetRoles(ctx, []string{"Admin"})
	if err != nil || res.ARNs["Admin"] != old || !errors.Is(res.Stale, context.DeadlineExceeded) {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	// The walk it started was not cancelled with it: joining it yields the
	// new suffix without a second walk.
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "Admin")["Admin"]; got != roleARN("aws", newName) {
		t.Fatalf("got %s", got)
	}
	wantIAM(t, s, r, 2)
}

func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	r := newResolver(t, s, testOptions(clock))

	res, err := r.PermissionSetRoles(context.Background(), []string{"Typo"})
	if err != nil || len(res.ARNs) != 0 || len(res.Existing) != 9 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	wantIAM(t, s, r, 1)
	for range 20 {
		clock.Step(time.Second)
		if len(lookup(t, r, "Typo")) != 0 {
			t.Fatal("Typo resolved")
		}
	}
	wantIAM(t, s, r, 1) // a typo does not list per request

	// Created meanwhile: found once the negative entry expires.
	s.PutRole(awsemu.SSORole("Typo", "abcdefabcdefabcd", ""))
	clock.Step(DefaultNegativeTTL - 20*time.Second - time.Millisecond)
	if len(lookup(t, r, "Typo")) != 0 {
		t.Fatal("negative entry expired early")
	}
	clock.Step(time.Millisecond)
	if got := lookup(t, r, "Typo")["Typo"]; got != roleARN("aws", "AWSReservedSSO_Typo_abcdefabcdefabcd") {
		t.Fatalf("got %q", got)
	}
	wantIAM(t, s, r, 2)

	// Distinct typos do not list per request either: a listing younger
	// than NegativeTTL vouches for every name it lacks.
	for i := range 20 {
		if len(lookup(t, r, fmt.Sprintf("Typo%d", i))) != 0 {
			t.Fatal("resolved a typo")
		}
	}
	wantIAM(t, s, r, 2)
}

func TestSmallLRUAndStaleKnownMissing(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(clock)
	opts.Size = 1 // fewer slots than permission sets
	r := newResolver(t, s, opts)

	lookup(t, r, "Admin") // the name asked for is the one the LRU keeps
	lookup(t, r, "Admin", "Nope")
	wantIAM(t, s, r, 1)

	// DevOps was evicted: asking for it needs IAM, which is down. The old
	// listing still answers it, and Nope is still known missing (the
	// listing is younger than NegativeTTL), so this is a stale answer and
	// not an error.
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "InternalFailure"})
	clock.Step(time.Second)
	res, err := r.PermissionSetRoles(context.Background(), []string{"DevOps", "Nope"})
	if err != nil || res.Stale == nil || res.ARNs["DevOps"] != roleARN("aws", "AWSReservedSSO_DevOps_5555555555555555") || len(res.ARNs) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	// Past NegativeTTL the old listing no longer proves Nope is missing.
	clock.Step(DefaultNegativeTTL)
	res, err = r.PermissionSetRoles(context.Background(), []string{"DevOps", "Nope"})
	if err == nil || !strings.Contains(err.Error(), "Nope") || strings.Contains(err.Error(), "DevOps") || res.Stale == nil || len(res.ARNs) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestDuplicatePermissionSetPickRule(t *testing.T) {
	t.Parallel()
	roles := []awsemu.Role{
		// Identity Center moved from eu-west-1 to us-east-1: the newer
		// us-east-1 role is the live one.
		withDate(awsemu.SSORole("Admin", "aaaaaaaaaaaaaaaa", "eu-west-1"), "2023-01-01T00:00:00Z"),
		withDate(awsemu.SSORole("Admin", "bbbbbbbbbbbbbbbb", ""), "2024-01-01T00:00:00Z"),
		// Same creation time: the smallest role name wins.
		withDate(awsemu.SSORole("Dev", "dddddddddddddddd", ""), "2024-01-01T00:00:00Z"),
		withDate(awsemu.SSORole("Dev", "cccccccccccccccc", "eu-west-1"), "2024-01-01T00:00:00Z"),
	}
	for _, maxPage := range []int{0, 1} { // order of arrival does not matter
		s := startEmu(t, awsemu.Config{Roles: roles, MaxPageSize: maxPage})
		r := newResolver(t, s, testOptions(nil))
		got := lookup(t, r, "Admin", "Dev")
		if got["Admin"] != roleARN("aws", "AWSReservedSSO_Admin_bbbbbbbbbbbbbbbb") ||
			got["Dev"] != roleARN("aws", "AWSReservedSSO_Dev_cccccccccccccccc") {
			t.Fatalf("maxPage=%d: %v", maxPage, got)
		}
		d := r.Duplicates()
		if len(d) != 2 || len(d["Admin"]) != 2 || len(d["Dev"]) != 2 || r.Stats().DuplicatePermissionSets != 2 {
			t.Fatalf("Duplicates = %v", d)
		}
		// The answer says so, so that the engine can warn; from the
		// listing and from the cache alike.
		for range 2 {
			ans, err := r.PermissionSetRoles(context.Background(), []string{"Admin"})
			want := []string{roleARN("aws", "AWSReservedSSO_Admin_aaaaaaaaaaaaaaaa"), roleARN("aws", "AWSReservedSSO_Admin_bbbbbbbbbbbbbbbb")}
			if err != nil || !slices.Equal(ans.Ambiguous["Admin"], want) || len(ans.Ambiguous) != 1 {
				t.Fatalf("Ambiguous = %v, %v; want Admin: %v", ans.Ambiguous, err, want)
			}
		}
	}
}

func withDate(r awsemu.Role, date string) awsemu.Role {
	r.CreateDate = mustTime(date)
	return r
}

func TestChinaPartition(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Partition: "aws-cn", Roles: trickyRoles, NodeRoleName: "eks-node"})
	r := newResolver(t, s, testOptions(nil))

	a, err := r.Account(context.Background())
	if err != nil || a.Partition != "aws-cn" || a.ID != acct {
		t.Fatalf("Account = %+v, %v", a, err)
	}
	got := lookup(t, r, "Admin", "Admin_ReadOnly")
	if got["Admin"] != roleARN("aws-cn", "AWSReservedSSO_Admin_1111111111111111") ||
		got["Admin_ReadOnly"] != roleARN("aws-cn", "AWSReservedSSO_Admin_ReadOnly_2222222222222222") {
		t.Fatalf("got %v", got)
	}
	nodes, err := r.NodeRoleARNs(context.Background(), nil)
	if err != nil || !slices.Equal(nodes, []string{roleARN("aws-cn", "eks-node")}) {
		t.Fatalf("NodeRoleARNs = %v, %v", nodes, err)
	}
}

func TestAccountAskedOnce(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Partition: "aws-us-gov", AccountID: "444455556666"})
	opts := testOptions(nil)
	opts.RetryMaxAttempts = 2
	r := newResolver(t, s, opts)

	// A failure is reported with the call's name and is not cached.
	s.InjectFault("sts:GetCallerIdentity", awsemu.Fault{Code: "InternalFailure", Times: 2})
	if _, err := r.Account(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "sts:GetCallerIdentity: ") {
		t.Fatalf("err = %v", err)
	}
	wantSTS(t, s, r, 0)

	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := r.Account(context.Background())
			if err != nil || a.Partition != "aws-us-gov" || a.ID != "444455556666" {
				t.Errorf("Account = %+v, %v", a, err)
			}
		}()
	}
	wg.Wait()
	for range 5 {
		if _, err := r.Account(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wantSTS(t, s, r, 1)
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(nil)
	opts.CallTimeout = 100 * time.Millisecond
	opts.RetryMaxAttempts = 1
	r := newResolver(t, s, opts)
	s.InjectFault("iam:ListRoles", awsemu.Fault{Delay: 5 * time.Second, Times: 1})
	s.InjectFault("sts:GetCallerIdentity", awsemu.Fault{Delay: 5 * time.Second, Times: 1})

	start := time.Now()
	_, err := r.PermissionSetRoles(context.Background(), []string{"Admin"})
	if err == nil || !strings.HasPrefix(err.Error(), "iam:ListRoles") {
		t.Fatalf("err = %v", err)
	}
	_, err = r.Account(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "sts:GetCallerIdentity") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("calls took %v despite a 100ms CallTimeout", d)
	}
}

func TestIAMRateLimit(t *testing.T) {
	t.Parallel()
	roles := make([]awsemu.Role, 6)
	for i := range roles {
		roles[i] = awsemu.SSORole(fmt.Sprintf("PS%d", i), fmt.Sprintf("%016x", i), "")
	}
	s := startEmu(t, awsemu.Config{Roles: roles, MaxPageSize: 1}) // 6 pages
	clk := newFakeClock()
	opts := testOptions(clk)
	opts.IAMRequestsPerSecond = 20 // one request per 50ms after the burst
	opts.IAMBurst = 1
	r := newResolver(t, s, opts)

	done := make(chan map[string]string, 1)
	go func() { done <- lookup(t, r, "PS5") }()
	// Each page after the first waits its 50ms turn on the clock: the
	// next request goes out only when the clock has moved on.
	for sent := 1; sent < 6; sent++ {
		for !clk.HasWaiters() {
			runtime.Gosched()
		}
		if n := s.Calls("iam:ListRoles"); n != sent {
			t.Fatalf("%d requests sent before the clock moved, want %d", n, sent)
		}
		clk.Step(49 * time.Millisecond)
		if n := s.Calls("iam:ListRoles"); n != sent || !clk.HasWaiters() {
			t.Fatalf("a request went out after 49ms of the 50ms turn (%d sent)", n)
		}
		clk.Step(time.Millisecond)
		for s.Calls("iam:ListRoles") == sent && clk.HasWaiters() {
			runtime.Gosched()
		}
	}
	if got := <-done; got["PS5"] == "" {
		t.Fatal("not resolved")
	}
	wantIAM(t, s, r, 6)
}

func TestNodeRoleFromExplicitFlags(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{NodeRoleName: "from-imds"})
	r := newResolver(t, s, testOptions(nil))

	got, err := r.NodeRoleARNs(context.Background(), []string{
		"arn:aws:iam::123456789012:role/eks/nodes/NodeA",
		" ",
		"arn:aws:iam::123456789012:role/NodeA", // same role once its path is gone
		"arn:aws-us-gov:iam::123456789012:role/NodeB",
	})
	want := []string{"arn:aws:iam::123456789012:role/NodeA", "arn:aws-us-gov:iam::123456789012:role/NodeB"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("NodeRoleARNs = %v, %v; want %v", got, err, want)
	}
	_, err = r.NodeRoleARNs(context.Background(), []string{"arn:aws:iam::123456789012:instance-profile/NodeA"})
	if err == nil || !strings.Contains(err.Error(), "--node-role-arn") {
		t.Fatalf("err = %v", err)
	}
	if c := s.AllCalls(); len(c) != 0 {
		t.Fatalf("explicit node roles made AWS calls: %v", c)
	}
}

func TestNodeRoleFromIMDS(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{NodeRoleName: "eks-node-role", InstanceProfileName: "eks-node-profile"})
	r := newResolver(t, s, testOptions(nil))

	// Blank flags count as none.
	got, err := r.NodeRoleARNs(context.Background(), []string{""})
	if err != nil || !slices.Equal(got, []string{roleARN("aws", "eks-node-role")}) {
		t.Fatalf("NodeRoleARNs = %v, %v", got, err)
	}
	wantCalls(t, s, "imds:iam/security-credentials/", 1)
	wantCalls(t, s, "imds:iam/info", 0) // the instance profile is not the role
	wantSTS(t, s, r, 1)
}

func TestNodeRoleIMDSWithoutRole(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{})
	r := newResolver(t, s, testOptions(nil))

	_, err := r.NodeRoleARNs(context.Background(), nil)
	if !errors.Is(err, ErrNoNodeRole) || !strings.Contains(err.Error(), "--node-role-arn") {
		t.Fatalf("err = %v", err)
	}
	wantCalls(t, s, "imds:iam/security-credentials/", 1) // a 404 is not retried
}

func TestNodeRoleIMDSUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()

	s := startEmu(t, awsemu.Config{NodeRoleName: "eks-node-role"})
	r := newResolver(t, s, testOptions(nil))
	r.imdsOptFns = append(r.imdsOptFns, func(o *imds.Options) { o.Endpoint = closed })

	start := time.Now()
	_, err = r.NodeRoleARNs(context.Background(), nil)
	if !errors.Is(err, ErrIMDSUnreachable) ||
		!strings.Contains(err.Error(), "pods often cannot reach IMDS (hop limit 1); pass --node-role-arn") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unreachable IMDS took %v: %v", d, err)
	}
	if c := s.AllCalls(); len(c) != 0 {
		t.Fatalf("calls = %v", c)
	}
}

func TestNodeRoleIMDSHangs(t *testing.T) {
	t.Parallel()
	// Accepts connections and never answers, like IMDS behind hop limit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})

	s := startEmu(t, awsemu.Config{NodeRoleName: "eks-node-role"})
	opts := testOptions(nil)
	opts.IMDSTimeout = 300 * time.Millisecond
	r := newResolver(t, s, opts)
	r.imdsOptFns = append(r.imdsOptFns, func(o *imds.Options) { o.Endpoint = "http://" + ln.Addr().String() + "/" })

	start := time.Now()
	_, err = r.NodeRoleARNs(context.Background(), nil)
	if !errors.Is(err, ErrIMDSUnreachable) || !strings.Contains(err.Error(), "--node-role-arn") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("hanging IMDS took %v with a 300ms IMDSTimeout", d)
	}
}

// TestTimeoutSaysWhatAWSLastAnswered: when a call runs out of time while the
// SDK backs off between retries, the error says what IAM or STS answered
// (found by the e2e outage test: the startup log said only "context
// deadline exceeded" while STS kept answering ServiceUnavailable). A call
// that got no answer at all says no more than the timeout.
func TestTimeoutSaysWhatAWSLastAnswered(t *testing.T) {
	t.Parallel()
	s := startEmu(t, awsemu.Config{Roles: trickyRoles})
	opts := testOptions(nil)
	// Long enough that, however loaded the machine (-race, tests side by
	// side), IAM and STS have answered at least once before the deadline:
	// 300ms was not always.
	opts.CallTimeout = 3 * time.Second
	opts.RetryMaxAttempts = 1000
	// Backoff long enough that the SDK's retry quota (a token bucket that
	// every retry of a 5xx draws on) outlasts the deadline: the test is
	// about the deadline, not the quota.
	opts.RetryMaxBackoff = 500 * time.Millisecond
	r := newResolver(t, s, opts)
	s.InjectFault("sts:GetCallerIdentity", awsemu.Fault{Code: "ServiceUnavailable", Message: "STS is down"})
	s.InjectFault("iam:ListRoles", awsemu.Fault{Code: "Throttling", Message: "Rate exceeded"})

	_, err := r.Account(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the last STS answer was") ||
		!strings.Contains(err.Error(), "STS is down") {
		t.Errorf("Account: %v", err)
	}
	_, err = r.PermissionSetRoles(context.Background(), []string{"Admin"})
	if err == nil || !strings.Contains(err.Error(), "the last IAM answer was") || !strings.Contains(err.Error(), "Throttling") {
		t.Errorf("PermissionSetRoles, walk timed out: %v", err)
	}
	// A caller that gives up waiting for a walk in progress is told too.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = r.PermissionSetRoles(ctx, []string{"Admin"})
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") || !strings.Contains(err.Error(), "Rate exceeded") {
		t.Errorf("PermissionSetRoles, caller gave up: %v", err)
	}

	// No answer at all: nothing to add. (The first Refresh only waits for
	// the walk the caller above left running, if it still runs.)
	s.ClearFaults()
	_ = r.Refresh(context.Background())
	s.InjectFault("iam:ListRoles", awsemu.Fault{Delay: time.Minute})
	err = r.Refresh(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "the last IAM answer") {
		t.Errorf("Refresh, IAM hangs: %v", err)
	}
}

// TestWithLastAnswerJudgesByTheCallsDeadline: when the call's deadline has
// passed, the last answer is added even if the SDK's error does not wrap
// the deadline (it gave up waiting for a retry token); a call still within
// its deadline keeps its error as it is.
func TestWithLastAnswerJudgesByTheCallsDeadline(t *testing.T) {
	var last atomic.Pointer[error]
	answer := errors.New("api error ServiceUnavailable: STS is down")
	last.Store(&answer)
	sdkErr := errors.New("https response error StatusCode: 503: failed to get rate limit token, canceled, context deadline exceeded")

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := withLastAnswer(expired, sdkErr, &last, "STS")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, sdkErr) || !strings.Contains(err.Error(), "the last STS answer was: api error ServiceUnavailable: STS is down") {
		t.Fatalf("past the deadline: %v", err)
	}
	if err := withLastAnswer(context.Background(), sdkErr, &last, "STS"); err != sdkErr { //nolint:errorlint // the very error
		t.Fatalf("within the deadline the error is changed: %v", err)
	}
	if err := withLastAnswer(expired, nil, &last, "STS"); err != nil {
		t.Fatalf("no error became %v", err)
	}
}

// TestListingKeepsItsStringsTogether: the strings a listing keeps until the
// next one (permission sets, ARNs, role names) share one allocation, so
// that they do not pin the pages of the listing's decoding garbage.
func TestListingKeepsItsStringsTogether(t *testing.T) {
	var roles []awsemu.Role
	for i := range 500 {
		roles = append(roles, awsemu.SSORole(fmt.Sprintf("Team%03d", i), fmt.Sprintf("%016x", i), "eu-west-1"))
	}
	s := startEmu(t, awsemu.Config{Roles: roles, MaxPageSize: 100})
	r := newResolver(t, s, testOptions(nil))
	if got := lookup(t, r, "Team007"); got["Team007"] != roleARN("aws", "AWSReservedSSO_Team007_0000000000000007") {
		t.Fatalf("Team007 = %q", got["Team007"])
	}
	l := r.last.Load()
	var kept []string
	for ps, arn := range l.arns {
		kept = append(kept, ps, arn)
	}
	for name, f := range l.facts {
		kept = append(kept, name, f.arn)
	}
	kept = append(kept, l.existing...)
	lo, hi := uintptr(1<<64-1), uintptr(0)
	var size int
	for _, s := range kept {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
	}
	for ps, arn := range l.arns {
		size += len(ps) + len(arn)
	}
	for name, f := range l.facts {
		size += len(name) + len(f.arn)
	}
	if len(l.arns) != 500 || len(l.facts) != 500 {
		t.Fatalf("listed %d permission sets, %d roles; want 500", len(l.arns), len(l.facts))
	}
	if span := int(hi - lo); span > size {
		t.Fatalf("the listing's %d strings span %d bytes of memory for %d bytes of text: not one allocation", len(kept), span, size)
	}
}
