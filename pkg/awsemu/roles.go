package awsemu

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is an IAM role as the emulator stores it.
type Role struct {
	Name       string    `json:"name"`                // e.g. AWSReservedSSO_Admin_0123456789abcdef
	Path       string    `json:"path,omitempty"`      // e.g. /aws-reserved/sso.amazonaws.com/eu-west-1/ ; "" means "/"
	RoleID     string    `json:"roleId,omitempty"`    // optional; generated when empty
	CreateDate time.Time `json:"createDate,omitzero"` // optional; the time it was stored when zero
}

const (
	ssoNamePrefix = "AWSReservedSSO_"
	ssoPathPrefix = "/aws-reserved/sso.amazonaws.com/"
)

// errNoSSORole lets the admin API answer 404 rather than 409.
var errNoSSORole = errors.New("no SSO role for permission set")

// SSORole builds the role IAM Identity Center creates for a permission set: name
// AWSReservedSSO_<permissionSet>_<suffix>, path /aws-reserved/sso.amazonaws.com/<region>/
// (just /aws-reserved/sso.amazonaws.com/ when region is "" or us-east-1).
func SSORole(permissionSet, suffix, region string) Role {
	path := ssoPathPrefix
	if region != "" && region != "us-east-1" {
		path += region + "/"
	}
	return Role{Name: ssoNamePrefix + permissionSet + "_" + suffix, Path: path}
}

// RandomSuffix returns 16 lowercase hex characters, the shape of the suffix
// Identity Center appends to its role names.
func RandomSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// permissionSetOf returns the permission set an SSO role was created for. The
// suffix is cut from the right because permission set names may contain "_".
func permissionSetOf(r Role) (string, bool) {
	if !strings.HasPrefix(r.Path, ssoPathPrefix) {
		return "", false
	}
	rest, ok := strings.CutPrefix(r.Name, ssoNamePrefix)
	i := strings.LastIndexByte(rest, '_')
	if !ok || i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// normalizeRole fills in what IAM would assign when the role is created.
func normalizeRole(r Role) Role {
	if r.Path == "" {
		r.Path = "/"
	}
	if r.RoleID == "" {
		r.RoleID = newRoleID()
	}
	if r.CreateDate.IsZero() {
		r.CreateDate = time.Now()
	}
	// IAM reports whole seconds in UTC; doing the same keeps round trips equal.
	r.CreateDate = r.CreateDate.UTC().Truncate(time.Second)
	return r
}

// newRoleID returns an ID shaped like IAM's: "AROA" and 17 upper-case
// letters or digits.
func newRoleID() string {
	b := make([]byte, 11)
	rand.Read(b)
	return "AROA" + base32.StdEncoding.EncodeToString(b)[:17]
}

// roleKey is the map key of a role: IAM role names are unique regardless of
// case, and GetRole finds a role whatever case the caller uses.
func roleKey(name string) string { return strings.ToLower(name) }

// sortKey orders roles by path, then name. NUL cannot occur in either, so
// comparing keys compares (path, name) pairs.
func sortKey(r Role) string { return r.Path + "\x00" + r.Name }

func (s *Server) roleARN(r Role) string {
	return fmt.Sprintf("arn:%s:iam::%s:role%s%s", s.cfg.Partition, s.cfg.AccountID, r.Path, r.Name)
}

// SetRoles replaces every role.
func (s *Server) SetRoles(roles []Role) {
	m := make(map[string]Role, len(roles))
	for _, r := range roles {
		m[roleKey(r.Name)] = normalizeRole(r)
	}
	s.mu.Lock()
	s.roles = m
	s.mu.Unlock()
}

// PutRole adds a role or replaces the one with the same name.
func (s *Server) PutRole(r Role) {
	r = normalizeRole(r)
	s.mu.Lock()
	s.roles[roleKey(r.Name)] = r
	s.mu.Unlock()
}

// DeleteRole removes a role; a missing name is not an error.
func (s *Server) DeleteRole(name string) {
	s.mu.Lock()
	delete(s.roles, roleKey(name))
	s.mu.Unlock()
}

// RotatePermissionSet gives the SSO role of permissionSet a new random suffix
// (same path), as unassigning and reassigning the permission set does. The
// new role also gets a new RoleID and CreateDate: IAM sees a new role.
func (s *Server) RotatePermissionSet(permissionSet string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var matches []Role
	for _, r := range s.roles {
		if ps, ok := permissionSetOf(r); ok && ps == permissionSet {
			matches = append(matches, r)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("awsemu: %w %q", errNoSSORole, permissionSet)
	case 1:
	default:
		return "", fmt.Errorf("awsemu: %d SSO roles for permission set %q, expected one", len(matches), permissionSet)
	}
	old := matches[0]
	delete(s.roles, roleKey(old.Name))
	r := normalizeRole(Role{Name: ssoNamePrefix + permissionSet + "_" + RandomSuffix(), Path: old.Path})
	s.roles[roleKey(r.Name)] = r
	return r.Name, nil
}

// SetNodeRole sets the role IMDS reports as attached to the instance; ""
// detaches it.
func (s *Server) SetNodeRole(name string) {
	s.mu.Lock()
	s.nodeRole = name
	s.mu.Unlock()
}
