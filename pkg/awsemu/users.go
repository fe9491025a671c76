package awsemu

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"time"
)

// User is an IAM user as the emulator stores it: EKS checks an access
// entry's user ARN against IAM as it checks a role's.
type User struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`   // "" means "/"
	UserID string `json:"userId,omitempty"` // generated when empty
}

func (s *Server) userARN(u User) string {
	return fmt.Sprintf("arn:%s:iam::%s:user%s%s", s.cfg.Partition, s.cfg.AccountID, u.Path, u.Name)
}

// PutUser adds an IAM user or replaces the one with the same name.
func (s *Server) PutUser(u User) {
	if u.Path == "" {
		u.Path = "/"
	}
	if u.UserID == "" {
		b := make([]byte, 11)
		_, _ = rand.Read(b)
		u.UserID = "AIDA" + base32.StdEncoding.EncodeToString(b)[:17]
	}
	s.mu.Lock()
	s.users[roleKey(u.Name)] = u
	s.mu.Unlock()
}

// RecreateRole deletes a role and creates it again with the same name and
// path, as someone re-running their infrastructure code does: IAM sees a
// new role (new RoleID, new CreateDate), and access entries made for the
// old one no longer match it. The new CreateDate is rounded up to the next
// whole second (IAM reports whole seconds), so that it is always later
// than any entry made before.
func (s *Server) RecreateRole(name string) (Role, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.roles[roleKey(name)]
	if !ok {
		return Role{}, fmt.Errorf("awsemu: %w %q", errNoRole, name)
	}
	r := normalizeRole(Role{Name: old.Name, Path: old.Path, CreateDate: time.Now().Truncate(time.Second).Add(time.Second)})
	s.roles[roleKey(name)] = r
	return r, nil
}

var errNoRole = fmt.Errorf("no IAM role")
