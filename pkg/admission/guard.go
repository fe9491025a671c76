package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/audit"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/iamarn"
	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/textcap"
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
	release, busy := h.acquire(ctx, r)
	if busy != nil {
		return *busy
	}
	defer release()
	// The stored object is judged as the authenticator loads it, not as
	// the engine would: one the engine refuses (a second document, a
	// !!binary value, ...) still maps people, and they stay protected.
	checkOld := req.Operation == admissionv1.Update && r.old != nil
	var old *awsauth.Loaded
	if checkOld {
		old = h.oldLoaded(r)
	}
	// Judge the object as it will be stored: the mutating handler has
	// already resolved it, so rendering must change nothing. If it would,
	// the mutation did not happen (or another webhook undid it), and the
	// authenticator would load fewer mappings than were written.
	res, resp, ok := h.render(ctx, r, nil)
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
		stale = staleSuffixes(awsauth.LintWithOptions(r.obj.Data, awsauth.Options{Cache: h.readings}), res)
	}
	if len(res.Changed) > 0 && stale == nil {
		return h.deny(ctx, r, "NotResolved", fmt.Sprintf("aws-auth was not changed: %s still hold(s) unresolved entries (permissionset without its rolearn, $ACCOUNTID, or a role ARN with a path), so the authenticator would not load them as written. Fix: make sure the aws-auth-webhook mutating webhook is registered, then retry the edit",
			strings.Join(res.Changed, " and ")), nil)
	}
	if req.Operation == admissionv1.Update && r.old == nil {
		// The apiserver always sends the stored object with an UPDATE;
		// without it the guard cannot tell what the edit removes.
		return h.guard(ctx, r, "GuardCannotTell",
			"the request carries no oldObject, so the lockout guard cannot tell what this edit removes. Fix: send the update through the apiserver, or "+breakGlassFix)
	}
	if checkOld {
		if reason, msg := h.lockout(r, old, h.oldMatcher(r), res.AsLoaded()); reason != "" {
			return h.guard(ctx, r, reason, msg)
		}
	}
	return admission.Allowed("").WithWarnings(warnings(len(stale), func(i int) string { return stale[i] }, 0)...)
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
		role, err := iamarn.ParseRole(was.ARN)
		if err != nil || role.Path != "/" || role.Canonical() != was.ARN || was.PermissionSet == "" || now.PermissionSet != was.PermissionSet {
			return nil
		}
		if ps, _, ok := iamarn.ParseSSORoleName(role.Name); !ok || ps != was.PermissionSet {
			return nil
		}
		out = append(out, fmt.Sprintf("%s[%d] (permissionset %s): IAM Identity Center gave the permission set a new role (%s) while this edit was admitted; %s was kept and the resync loop will write the new ARN",
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
		return admission.Allowed("").WithWarnings(textcap.Clip(warningPrefix+note, MaxWarningBytes))
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

// lockout compares what the authenticator loads from the stored object
// (old, read as the authenticator reads it, whatever the engine thinks of
// it) with what it will load from the edited one (now, admitted by the
// engine, so the two readings agree): the requester's own mapping and
// every node-role mapping must survive with their username and groups.
// Principals are matched as the authenticator matches them: the caller's
// canonical ARN (a role without its path, a user with it), lowercased,
// against each mapping's ARN with strings.EqualFold. When the guard cannot
// tell, it refuses and says why; break-glass is the way through.
func (h *Handlers) lockout(r *request, old *awsauth.Loaded, oldMatch *awsauth.Matcher, now *awsauth.Loaded) (reason, msg string) {
	nowMatch := now.Matcher() // indexed once: old may hold thousands of node roles
	if reason, msg := lockoutSelf(r, old, oldMatch, now, nowMatch); reason != "" {
		return reason, msg
	}
	return lockoutNodeRoles(old, nowMatch)
}

const breakGlassFix = "ask someone in a break-glass group to make this change"

func lockoutSelf(r *request, old *awsauth.Loaded, oldMatch *awsauth.Matcher, now *awsauth.Loaded, nowMatch *awsauth.Matcher) (reason, msg string) {
	signedIn := extraValue(r.UserInfo.Extra, "canonicalArn")
	if signedIn == "" {
		return "", "" // not signed in through the authenticator
	}
	canonical, err := iamarn.Canonicalize(signedIn)
	if err != nil {
		return "GuardCannotTell", fmt.Sprintf("you are signed in as %q (userInfo.extra canonicalArn), which is not an identity the authenticator maps (%v), so the lockout guard cannot tell whether this edit keeps your access. Fix: %s",
			signedIn, err, breakGlassFix)
	}
	was, key := oldMatch.Match(canonical)
	if len(was) == 0 {
		// Not mapped by an entry: through mapAccounts, if at all (then as
		// the ARN itself, with no groups).
		if _, account, err := iamarn.Account(canonical); err == nil && old.HasAccount(account) && !now.HasAccount(account) {
			return "LockoutSelf", fmt.Sprintf("this edit removes the account %s from mapAccounts, through which you are signed in (%s): you would lock yourself out. Fix: keep the account in mapAccounts, map your role or user in mapRoles or mapUsers first, or %s",
				account, signedIn, breakGlassFix)
		}
		return "", ""
	}
	if differ(was) {
		return "GuardCannotTell", fmt.Sprintf("you are signed in as %s, which %d entries of %s map with different usernames or groups (%s); the authenticator uses any one of them, so the lockout guard cannot tell which one gives you access. Fix: %s",
			signedIn, len(was), key, describe(was), breakGlassFix)
	}
	w := was[0]
	entry := fmt.Sprintf("%s[%d] (%s), the mapping you are signed in with (%s)", key, w.Index, w.Label(), signedIn)
	is, _ := nowMatch.Match(canonical)
	text := ""
	switch {
	case len(is) == 0:
		text = fmt.Sprintf("this edit removes %s: you would lock yourself out", entry)
	case is[0].Username != w.Username:
		text = fmt.Sprintf("this edit changes the username of %s from %q to %q: RBAC knows you by that name, so you would lock yourself out of what it grants", entry, w.Username, is[0].Username)
	default:
		if lost := missing(w.Groups, is[0].Groups); len(lost) > 0 {
			text = fmt.Sprintf("this edit takes the groups %s from %s: you would lock yourself out of what they grant", strings.Join(lost, ", "), entry)
		}
	}
	if text == "" {
		return "", ""
	}
	return "LockoutSelf", text + ". Fix: keep that entry with its username and groups, or " + breakGlassFix
}

// lockoutNodeRoles: every role mapped as a node (groups
// system:bootstrappers and system:nodes) must stay mapped so, under the
// same username: the node authorizer knows nodes by
// system:node:{{EC2PrivateDNSName}}. A role ARN written with a path never
// matched a node, so it protects nothing.
func lockoutNodeRoles(old *awsauth.Loaded, nowMatch *awsauth.Matcher) (reason, msg string) {
	for _, w := range old.Roles {
		if w.SSO || !hasAll(w.Groups, nodeGroups) {
			continue
		}
		role, err := iamarn.ParseRole(w.ARN)
		if err != nil || role.Path != "/" {
			continue
		}
		is, _ := nowMatch.Match(role.Canonical())
		entry := fmt.Sprintf("the node-role mapping mapRoles[%d] (%s)", w.Index, w.ARN)
		what := ""
		switch {
		case len(is) == 0:
			what = "removes " + entry
		case is[0].Username != w.Username:
			what = fmt.Sprintf("changes the username of %s from %q to %q (the node authorizer knows nodes by %s)", entry, w.Username, is[0].Username, awsauth.NodeUsername)
		case !hasAll(is[0].Groups, nodeGroups):
			what = fmt.Sprintf("takes the groups %s from %s", strings.Join(missing(nodeGroups, is[0].Groups), ", "), entry)
		}
		if what != "" {
			return "LockoutNodeRole", fmt.Sprintf("this edit %s: nodes using that role could no longer join or stay in the cluster. Fix: keep the entry with username %s and groups %s, or %s",
				what, w.Username, strings.Join(nodeGroups, " and "), breakGlassFix)
		}
	}
	return "", ""
}

// differ reports whether the mappings give different usernames or groups.
func differ(ms []awsauth.LoadedMapping) bool {
	for _, m := range ms[1:] {
		if m.Username != ms[0].Username || strings.Join(m.Groups, "\x00") != strings.Join(ms[0].Groups, "\x00") {
			return true
		}
	}
	return false
}

func describe(ms []awsauth.LoadedMapping) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s as %q in [%s]", m.ARN, m.Username, strings.Join(m.Groups, ", "))
	}
	return strings.Join(parts, "; ")
}

// missing lists the groups of want that have lacks.
func missing(want, have []string) []string {
	var out []string
	for _, g := range want {
		if !slices.Contains(have, g) {
			out = append(out, g)
		}
	}
	return out
}

func hasAll(have, want []string) bool { return len(missing(want, have)) == 0 }

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
