// Package admission holds the two admission handlers for aws-auth: the
// mutating one resolves what the user asked for (through the shared
// rewrite engine, pkg/awsauth), the validating one rejects what would lock
// people out. Both act on one ConfigMap and allow every other untouched.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"golang.org/x/sync/semaphore"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/textcap"
)

// Config says which object the handlers guard and how.
type Config struct {
	// Namespace and Name of the guarded ConfigMap (kube-system/aws-auth).
	Namespace, Name string
	// NodeRoleARNs are kept mapped: the mutating handler adds them.
	NodeRoleARNs []string
	// BreakGlassGroups bypass the lockout guard (never the structural
	// validation); every bypass is audited.
	BreakGlassGroups []string
	// MaxInFlightBytes bounds the aws-auth data (object plus oldObject)
	// the engine works on at once, across all requests; a request above
	// it waits for the others to finish, and then runs alone. Parsing a
	// document costs many times its size in memory, so this is what keeps
	// a burst of edits to a ~1 MiB aws-auth inside a modest memory limit,
	// while edits of ordinary size run side by side. Default
	// DefaultMaxInFlightBytes.
	MaxInFlightBytes int64
}

// DefaultMaxInFlightBytes lets one edit of a ConfigMap at the size limit
// (object and oldObject, 1 MiB each) run at a time.
const DefaultMaxInFlightBytes = 2 * awsauth.MaxConfigMapBytes

// Handlers are the mutating and validating handlers, sharing one engine,
// resolver and auditor.
type Handlers struct {
	cfg      Config
	resolver awsauth.Resolver
	auditor  *audit.Auditor
	log      logr.Logger
	// readings remembers how items of aws-auth read, so that the engine
	// reads again only what an edit changed (see readings).
	readings *readings
	// work bounds the bytes of aws-auth data being worked on (see
	// Config.MaxInFlightBytes).
	work *semaphore.Weighted
	// stored keeps the last oldObjects decoded and loaded (see
	// storedObjects).
	stored *storedObjects
}

// New returns the handlers.
func New(cfg Config, resolver awsauth.Resolver, auditor *audit.Auditor, log logr.Logger) *Handlers {
	if cfg.MaxInFlightBytes <= 0 {
		cfg.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	return &Handlers{cfg: cfg, resolver: resolver, auditor: auditor, log: log,
		readings: newReadings(DefaultReadingBytes), work: semaphore.NewWeighted(cfg.MaxInFlightBytes), stored: newStoredObjects()}
}

// Forget drops what the handlers remember between requests (how items read,
// the stored objects decoded): it only makes the next requests do the work
// again. The server calls it once edits have stopped for a while: the
// memory serves a burst of edits (an edit, its validation, the next edit)
// and would otherwise stay held between bursts — up to ~20 MiB after edits
// of an aws-auth at the 1 MiB limit.
func (h *Handlers) Forget() {
	h.readings.forget()
	h.stored.forget()
}

// ReadingStats reports how often item readings came from memory.
func (h *Handlers) ReadingStats() ReadingStats { return h.readings.Stats() }

// acquire waits until the request's data may be worked on; release undoes
// it. It fails only when the request ends (the apiserver gave up) first.
func (h *Handlers) acquire(ctx context.Context, r *request) (release func(), resp *admission.Response) {
	n := int64(dataBytes(r.obj) + dataBytes(r.old))
	n = max(1, min(n, h.cfg.MaxInFlightBytes))
	if err := h.work.Acquire(ctx, n); err != nil {
		resp := admission.Errored(http.StatusServiceUnavailable,
			fmt.Errorf("aws-auth was not changed: the webhook is busy with other edits of a large aws-auth and the request ended while waiting (%w); retry", err))
		return nil, &resp
	}
	return func() { h.work.Release(n) }, nil
}

// dataBytes is the size of a ConfigMap's data, as the engine reads it.
func dataBytes(cm *corev1.ConfigMap) int {
	if cm == nil {
		return 0
	}
	n := 0
	for k, v := range cm.Data {
		n += len(k) + len(v)
	}
	return n
}

// Mutator returns the mutating handler (POST /mutate).
func (h *Handlers) Mutator() admission.Handler { return admission.HandlerFunc(h.mutate) }

// Validator returns the validating handler (POST /validate).
func (h *Handlers) Validator() admission.Handler { return admission.HandlerFunc(h.validate) }

// request is what both handlers need to know about one AdmissionReview.
type request struct {
	admission.Request
	obj, old *corev1.ConfigMap
	// stored is old as remembered, with what the authenticator loads
	// from it; nil when there is no oldObject.
	stored *storedObject
}

// oldLoaded is what the authenticator loads from the oldObject.
func (h *Handlers) oldLoaded(r *request) *awsauth.Loaded { return r.stored.load(h.readings) }

// oldMatcher indexes oldLoaded for matching callers.
func (h *Handlers) oldMatcher(r *request) *awsauth.Matcher {
	r.stored.load(h.readings)
	return r.stored.matcher
}

// triage decides whether a request concerns the guarded ConfigMap. It
// returns a final response when it does not (or cannot be read).
func (h *Handlers) triage(req admission.Request) (*request, *admission.Response) {
	if req.Kind.Group != "" || req.Kind.Kind != "ConfigMap" {
		resp := admission.Errored(http.StatusBadRequest,
			fmt.Errorf("this webhook only handles ConfigMaps, not %s; check the webhook configuration's rules", req.Kind.String()))
		return nil, &resp
	}
	if req.Namespace != h.cfg.Namespace || req.Name != h.cfg.Name {
		resp := admission.Allowed("")
		return nil, &resp
	}
	r := &request{Request: req}
	var err error
	if r.obj, err = decodeConfigMap(req.Object.Raw); err != nil {
		resp := admission.Errored(http.StatusBadRequest, fmt.Errorf("object: %w", err))
		return nil, &resp
	}
	if r.stored, err = h.stored.decode(req.OldObject.Raw); err != nil {
		resp := admission.Errored(http.StatusBadRequest, fmt.Errorf("oldObject: %w", err))
		return nil, &resp
	}
	if r.stored != nil {
		r.old = r.stored.cm // shared with other requests: read, never change
	}
	return r, nil
}

func decodeConfigMap(raw []byte) (*corev1.ConfigMap, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(raw, cm); err != nil {
		return nil, fmt.Errorf("not a ConfigMap: %w", err)
	}
	// encoding/json fills a ConfigMap from any object; the apiserver always
	// says what it sent.
	if cm.Kind != "" && cm.Kind != "ConfigMap" || cm.APIVersion != "" && cm.APIVersion != "v1" {
		return nil, fmt.Errorf("not a ConfigMap: the object is a %s %s", cm.APIVersion, cm.Kind)
	}
	return cm, nil
}

func binaryBytes(cm *corev1.ConfigMap) int {
	n := 0
	for k, v := range cm.BinaryData {
		n += len(k) + len(v)
	}
	return n
}

func (h *Handlers) mutate(ctx context.Context, req admission.Request) admission.Response {
	r, final := h.triage(req)
	if final != nil {
		return *final
	}
	if req.Operation == admissionv1.Delete || r.obj == nil {
		return admission.Allowed("")
	}
	release, busy := h.acquire(ctx, r)
	if busy != nil {
		return *busy
	}
	defer release()
	res, resp, ok := h.render(ctx, r, h.cfg.NodeRoleARNs)
	if !ok {
		return resp
	}
	patches := dataPatches(r.obj, res)
	return admission.Patched("", patches...).WithWarnings(h.restoredNodeRoles(ctx, r, res)...)
}

// restoredNodeRoles returns the warnings for kubectl to print. A configured
// node role whose entry this edit removed was added back by the engine:
// the webhook keeps every node role it is given mapped (nodes cannot join
// without it). That repair is said in a warning and audited, instead of
// the engine's plain note that an entry was added.
func (h *Handlers) restoredNodeRoles(ctx context.Context, r *request, res *awsauth.Result) []string {
	var restored []string
	if r.Operation == admissionv1.Update && r.old != nil && len(res.AddedNodeRoles) > 0 {
		old := h.oldLoaded(r)
		for _, role := range res.AddedNodeRoles {
			if ms, _ := old.Match(role); len(ms) > 0 {
				restored = append(restored, role)
			}
		}
	}
	var shown awsauth.Findings
	for _, f := range res.Findings.Warnings() {
		if f.Reason == "NodeRoleAdded" && slices.ContainsFunc(restored, func(role string) bool { return strings.HasSuffix(f.Entry, " "+role) }) {
			continue
		}
		shown = append(shown, f)
	}
	if len(restored) == 0 {
		return warnings(len(shown), func(i int) string { return shown[i].String() }, 0)
	}
	msg := fmt.Sprintf("this edit removed the node-role entry for %s; it was added back (username %s, groups %s): the webhook keeps every node role it is configured with mapped, or nodes could not join. To retire a node role, remove it from the webhook's --node-role-arn first",
		strings.Join(restored, " and "), awsauth.NodeUsername, strings.Join(awsauth.NodeGroups, ", "))
	h.record(ctx, r, audit.ActionRepaired, "NodeRoleRestored", msg, restored)
	last := textcap.Clip(warningPrefix+msg, awsauth.MaxFindingBytes)
	return append(warnings(len(shown), func(i int) string { return shown[i].String() }, len(last)), last)
}

// Bounds on what a response carries (see awsauth.MaxListedFindings).
const (
	// MaxMessageBytes bounds a denial message: kubectl prints it whole.
	MaxMessageBytes = 32 << 10
	// MaxWarningBytes bounds a response's warnings in all. It is the
	// apiserver's own budget (4096 characters): past it, the apiserver
	// cuts every warning to 256 characters and drops the rest, and the
	// line saying how many more there are with them.
	MaxWarningBytes = 4096
)

const warningPrefix = "aws-auth: "

// warnings renders the first of n warnings (item(i), each prefixed
// "aws-auth: ") that fit in MaxWarningBytes less reserved bytes, and a last
// one saying how many were left out.
func warnings(n int, item func(i int) string, reserved int) []string {
	trailer := len(warningPrefix) + len(awsauth.More(n, "warning"))
	out, omitted := textcap.List(n, func(i int) string { return warningPrefix + item(i) },
		awsauth.MaxListedFindings, awsauth.MaxFindingBytes, 0, MaxWarningBytes-reserved-trailer)
	if more := awsauth.More(omitted, "warning"); more != "" {
		out = append(out, warningPrefix+more)
	}
	return out
}

// denial is the message of a rejection for errs: a head line, then the
// first findings, one "- " line each, and how many more there are, in at
// most MaxMessageBytes. lines are the finding lines, for the audit record.
func denial(head string, errs awsauth.Findings) (msg string, lines []string) {
	const bullet = "\n- "
	// Room for the last line, sized for the largest count it can say.
	reserve := len(awsauth.More(len(errs), "problem"))
	lines, omitted := errs.List(awsauth.MaxListedFindings, len(bullet), MaxMessageBytes-len(head)-2*len(bullet)-reserve)
	if more := awsauth.More(omitted, "problem"); more != "" {
		lines = append(lines, more)
	}
	return head + bullet + strings.Join(lines, bullet), lines
}

// render runs the engine on the request's object; on rejection it returns
// the (audited) denial.
func (h *Handlers) render(ctx context.Context, r *request, nodeRoles []string) (*awsauth.Result, admission.Response, bool) {
	opts := renderOptions(r, nodeRoles)
	opts.Cache = h.readings
	res, err := awsauth.Render(ctx, r.obj.Data, h.resolver, opts)
	return h.judge(ctx, r, res, err)
}

// renderOptions are the engine options for the request's object.
func renderOptions(r *request, nodeRoles []string) awsauth.Options {
	return awsauth.Options{NodeRoleARNs: nodeRoles, ExtraBytes: binaryBytes(r.obj)}
}

// judge turns the engine's answer about the request's object into a
// result, or into the (audited) denial.
func (h *Handlers) judge(ctx context.Context, r *request, res *awsauth.Result, err error) (*awsauth.Result, admission.Response, bool) {
	var lookupErr *awsauth.LookupError
	switch {
	case errors.As(err, &lookupErr):
		msg := "aws-auth was not changed: " + err.Error()
		return nil, h.deny(ctx, r, "AWSUnavailable", msg, nil), false
	case err != nil:
		return nil, admission.Errored(http.StatusInternalServerError, err), false
	case res.Findings.HasErrors():
		errs := res.Findings.Errors()
		msg, lines := denial(fmt.Sprintf("aws-auth was not changed: %d problem(s) would drop or break mappings:", len(errs)), errs)
		return nil, h.deny(ctx, r, errs[0].Reason, msg, lines), false
	}
	return res, admission.Response{}, true
}

// deny audits a rejection (unless it is a dry run) and returns it.
func (h *Handlers) deny(ctx context.Context, r *request, reason, msg string, entries []string) admission.Response {
	msg = textcap.Clip(msg, MaxMessageBytes) // the guard's messages quote mappings, which may be long
	h.record(ctx, r, audit.ActionRejected, reason, msg, entries)
	return admission.Denied(msg)
}

func (h *Handlers) record(ctx context.Context, r *request, action audit.Action, reason, msg string, entries []string) {
	if r.DryRun != nil && *r.DryRun {
		return // dry runs have no side effects, audit included
	}
	var uid types.UID
	if r.old != nil {
		uid = r.old.UID
	}
	h.auditor.Record(ctx, audit.Record{
		Action:    action,
		Reason:    reason,
		Operation: string(r.Operation),
		Requester: requester(r.UserInfo.Username, r.UserInfo.Extra),
		Object:    types.NamespacedName{Namespace: r.Namespace, Name: r.Name},
		UID:       uid,
		Entries:   entries,
		Message:   msg,
	})
}

// dataPatches is a JSON patch of just the data keys the engine changed.
func dataPatches(cm *corev1.ConfigMap, res *awsauth.Result) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	if len(res.Changed) > 0 && cm.Data == nil {
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: "/data", Value: map[string]string{}})
	}
	for _, k := range res.Changed {
		op := "replace"
		if _, ok := cm.Data[k]; !ok {
			op = "add"
		}
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: op, Path: "/data/" + escapePointer(k), Value: res.Data[k]})
	}
	return ops
}

// escapePointer escapes a JSON pointer segment (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// requester names who made the request, with the IAM identity the
// authenticator vouched for when there is one.
func requester(username string, extra map[string]authenticationv1.ExtraValue) string {
	if arn := extraValue(extra, "canonicalArn"); arn != "" {
		return fmt.Sprintf("%s (%s)", username, arn)
	}
	return username
}
