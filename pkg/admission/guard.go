package admission

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsidentity"
)

// The groups a node role must keep.
var nodeGroups = awsauth.NodeGroups

// validate runs after mutation: the engine's rules on the final object, then
// the lockout guard.
func (h *Handlers) validate(ctx context.Context, req admission.Request) admission.Response {
	r, final := h.triage(req)
	if final != nil {
		return *final
	}
	if req.Operation == admissionv1.Delete {
		return h.guard(ctx, r, "DeleteRefused",
			"deleting aws-auth resets every IAM mapping of the cluster and locks everyone out. Fix: edit or remove the entries instead (kubectl edit configmap aws-auth -n kube-system)")
	}
	if r.obj == nil {
		return admission.Allowed("")
	}
	// The object is usually what the mutating handler just produced and
	// the old object what is stored: both answers are then in memory, and
	// recalling them is no engine work, so only a request that must be
	// computed waits its turn behind edits of a large aws-auth.
	checkOld := req.Operation == admissionv1.Update && r.old != nil
	var old *awsauth.Result
	if checkOld {
		old, _ = h.memo.RecallLint(r.old.Data, awsauth.Options{})
	}
	recalled, fromMemory := h.memo.RecallRender(ctx, r.obj.Data, h.resolver, renderOptions(r, nil))
	if !fromMemory || (checkOld && old == nil) {
		release, busy := h.acquire(ctx, r)
		if busy != nil {
			return *busy
		}
		defer release()
	}
	if checkOld && old == nil {
		old = h.memo.Lint(r.old.Data, awsauth.Options{})
	}
	// Judge the object as it will be stored: the mutating handler has
	// already resolved it, so rendering must change nothing. If it would,
	// the mutation did not happen (or another webhook undid it), and the
	// authenticator would load fewer mappings than were written.
	var res *awsauth.Result
	var resp admission.Response
	var ok bool
	if fromMemory {
		res, resp, ok = h.judge(ctx, r, recalled, nil)
	} else {
		res, resp, ok = h.render(ctx, r, nil)
	}
	if !ok {
		return resp
	}
	var stale []string
	if len(res.Changed) > 0 {
		// A permission set whose rolearn is already a path-free role of
		// that permission set, only not the newest: the mutating webhook
		// resolved it from the IAM listing before the one the resync loop
		// installed a moment ago. The authenticator loads it as written
		// and the resync loop writes the new ARN; refusing the edit would
		// only fail a legitimate write for the timing of a refresh.
		stale = staleSuffixes(h.memo.Lint(r.obj.Data, awsauth.Options{}), res)
	}
	if len(res.Changed) > 0 && stale == nil {
		return h.deny(ctx, r, "NotResolved", fmt.Sprintf("aws-auth was not changed: %s still hold(s) unresolved entries (permissionset without its rolearn, $ACCOUNTID, or a role ARN with a path), so the authenticator would not load them as written. Fix: make sure the aws-auth-webhook mutating webhook is registered, then retry the edit",
			strings.Join(res.Changed, " and ")), nil)
	}
	if checkOld {
		if reason, msg := h.lockout(r, old, res); reason != "" {
			return h.guard(ctx, r, reason, msg)
		}
	}
	return admission.Allowed("").WithWarnings(stale...)
}

// staleSuffixes returns a warning for each entry the engine would still
// rewrite when every such rewrite only replaces the rolearn of a
// permission-set entry with a newer role of the same permission set (the
// suffix changed between mutation and validation), and nil otherwise.
// written is the object linted as it was sent.
func staleSuffixes(written, res *awsauth.Result) []string {
	if len(written.Roles) != len(res.Roles) || len(written.Users) != len(res.Users) {
		return nil
	}
	for i := range written.Users {
		if written.Users[i].ARN != res.Users[i].ARN {
			return nil
		}
	}
	var out []string
	for i, was := range written.Roles {
		now := res.Roles[i]
		if was.ARN == now.ARN {
			continue
		}
		canonical, name, pathStripped, err := awsidentity.CanonicalizeRoleARN(was.ARN)
		if err != nil || pathStripped || canonical != was.ARN || was.PermissionSet == "" || now.PermissionSet != was.PermissionSet {
			return nil
		}
		if ps, _, ok := awsidentity.ParseSSORoleName(name); !ok || ps != was.PermissionSet {
			return nil
		}
		out = append(out, fmt.Sprintf("aws-auth: %s[%d] (permissionset %s): IAM Identity Center gave the permission set a new role (%s) while this edit was admitted; %s was kept and the resync loop will write the new ARN",
			awsauth.KeyMapRoles, was.Index, was.PermissionSet, now.ARN, was.ARN))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// guard denies an edit that would lock people out, unless the requester is
// in a break-glass group; both outcomes are audited.
func (h *Handlers) guard(ctx context.Context, r *request, reason, msg string) admission.Response {
	if group := h.breakGlassGroup(r.UserInfo.Groups); group != "" {
		note := fmt.Sprintf("break-glass: the lockout guard was bypassed through group %q (%s)", group, msg)
		h.record(ctx, r, audit.ActionBreakGlass, reason, note, nil)
		return admission.Allowed("").WithWarnings("aws-auth: " + note)
	}
	return h.deny(ctx, r, reason, "aws-auth was not changed: "+msg, nil)
}

func (h *Handlers) breakGlassGroup(groups []string) string {
	for _, g := range groups {
		for _, bg := range h.cfg.BreakGlassGroups {
			if g == bg {
				return g
			}
		}
	}
	return ""
}

// lockout compares the old and new mappings: the requester's own mapping
// and every node role must survive with the groups they had.
// old is the stored object linted (it is the same from one edit to the
// next: its mappings come from memory after the first request).
func (h *Handlers) lockout(r *request, old, newRes *awsauth.Result) (reason, msg string) {
	if key, ok := awsauth.PrincipalKey(extraValue(r.UserInfo.Extra, "canonicalArn")); ok {
		if was, from := findMapping(old, key); was != nil {
			now, _ := findMapping(newRes, key)
			if lost := missing(was.Groups, now); now == nil || len(lost) > 0 {
				what := "removes"
				if now != nil {
					what = fmt.Sprintf("takes the groups %s from", strings.Join(lost, ", "))
				}
				return "LockoutSelf", fmt.Sprintf("this edit %s %s[%d] (%s), the mapping you are signed in with (%s): you would lock yourself out. Fix: keep that entry and its groups, or ask someone in a break-glass group to make this change",
					what, from, was.Index, was.Label(), extraValue(r.UserInfo.Extra, "canonicalArn"))
			}
		}
	}
	for _, was := range old.Roles {
		if !hasAll(was.Groups, nodeGroups) {
			continue
		}
		key, ok := awsauth.PrincipalKey(was.ARN)
		if !ok {
			continue
		}
		now, _ := findMapping(newRes, key)
		if now == nil || !hasAll(now.Groups, nodeGroups) {
			return "LockoutNodeRole", fmt.Sprintf("this edit removes the node role mapping mapRoles[%d] (%s): nodes using it could no longer join or stay in the cluster. Fix: keep the entry with groups system:bootstrappers and system:nodes",
				was.Index, was.ARN)
		}
	}
	return "", ""
}

// findMapping finds the mapping the authenticator would use for a principal
// key, and the data key it is in. As in the authenticator, roles come
// first and the last duplicate wins.
func findMapping(res *awsauth.Result, key string) (*awsauth.Mapping, string) {
	for _, set := range []struct {
		key      string
		mappings []awsauth.Mapping
	}{{awsauth.KeyMapRoles, res.Roles}, {awsauth.KeyMapUsers, res.Users}} {
		for i := len(set.mappings) - 1; i >= 0; i-- {
			if k, ok := awsauth.PrincipalKey(set.mappings[i].ARN); ok && k == key {
				return &set.mappings[i], set.key
			}
		}
	}
	return nil, ""
}

// missing lists the groups of want that m lacks (all of them when m is nil).
func missing(want []string, m *awsauth.Mapping) []string {
	var have []string
	if m != nil {
		have = m.Groups
	}
	var out []string
	for _, g := range want {
		if !contains(have, g) {
			out = append(out, g)
		}
	}
	return out
}

func hasAll(have, want []string) bool {
	for _, g := range want {
		if !contains(have, g) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// extraValue reads userInfo.extra case-insensitively: the authenticator
// sets canonicalArn, arn, sessionName, accessKeyId and principalId.
func extraValue(extra map[string]authenticationv1.ExtraValue, key string) string {
	for k, v := range extra {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
