package awsemu

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The emulated instance requires IMDSv2 (HttpTokens=required, as EKS best
// practice sets it): every read needs a session token from PUT /latest/api/token.

const (
	imdsTokenHeader    = "X-Aws-Ec2-Metadata-Token"
	imdsTokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
)

// serveIMDS answers under /latest/. Actions are named "imds:" plus the path
// below meta-data/ ("imds:iam/info"), or below /latest/ for the token and
// dynamic data ("imds:api/token", "imds:dynamic/instance-identity/document").
func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/latest/")
	key, isMetadata := strings.CutPrefix(rest, "meta-data/")
	if !isMetadata && rest != "api/token" && !strings.HasPrefix(rest, "dynamic/") {
		imdsError(w, http.StatusNotFound, "", "")
		return
	}
	action := "imds:" + key
	s.count(action)
	if s.applyFault(w, r, action, imdsError) {
		return
	}

	if rest == "api/token" {
		s.issueIMDSToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		imdsError(w, http.StatusMethodNotAllowed, "", "")
		return
	}
	if !s.validIMDSToken(r.Header.Get(imdsTokenHeader)) {
		imdsError(w, http.StatusUnauthorized, "", "")
		return
	}
	body, ok := s.metadata(key)
	if !ok {
		imdsError(w, http.StatusNotFound, "", "")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(body)
}

// imdsError answers like IMDS does: a status and a short text body. The code
// of an injected fault has no place on this wire, so only its message is sent.
func imdsError(w http.ResponseWriter, status int, _, message string) {
	if message == "" {
		message = http.StatusText(status)
	}
	http.Error(w, message, status)
}

func (s *Server) issueIMDSToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		imdsError(w, http.StatusMethodNotAllowed, "", "")
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTokenTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		imdsError(w, http.StatusBadRequest, "", "")
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	s.mu.Lock()
	for t, exp := range s.imdsTokens { // keep the table small in long runs
		if now.After(exp) {
			delete(s.imdsTokens, t)
		}
	}
	s.imdsTokens[token] = now.Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set(imdsTokenTTLHeader, strconv.Itoa(ttl))
	w.Write([]byte(token))
}

func (s *Server) validIMDSToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.imdsTokens[token]
	return ok && time.Now().Before(exp)
}

// metadata returns the document at key (a path below meta-data/, or
// dynamic/...).
func (s *Server) metadata(key string) ([]byte, bool) {
	s.mu.Lock()
	nodeRole := s.nodeRole
	s.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Second)

	switch key {
	case "placement/region":
		return []byte(s.cfg.Region), true
	case "dynamic/instance-identity/document":
		return jsonDoc(map[string]any{
			"accountId":        s.cfg.AccountID,
			"architecture":     "x86_64",
			"availabilityZone": s.cfg.Region + "a",
			"imageId":          "ami-0123456789abcdef0",
			"instanceId":       "i-0123456789abcdef0",
			"instanceType":     "m5.large",
			"pendingTime":      now.Add(-time.Hour).Format(time.RFC3339),
			"privateIp":        "10.0.0.10",
			"region":           s.cfg.Region,
			"version":          "2017-09-30",
		}), true
	}
	if nodeRole == "" {
		return nil, false // no instance profile: every iam/ path is 404
	}
	switch key {
	case "iam/security-credentials", "iam/security-credentials/":
		return []byte(nodeRole), true
	case "iam/security-credentials/" + nodeRole:
		return jsonDoc(map[string]any{
			"Code":            "Success",
			"LastUpdated":     now.Format(time.RFC3339),
			"Type":            "AWS-HMAC",
			"AccessKeyId":     "emulator-node-access-key-id",
			"SecretAccessKey": "emulator-node-secret-access-key",
			"Token":           "emulator-node-session-token",
			"Expiration":      now.Add(6 * time.Hour).Format(time.RFC3339),
		}), true
	case "iam/info":
		profile := s.cfg.InstanceProfileName
		if profile == "" {
			profile = nodeRole
		}
		return jsonDoc(map[string]any{
			"Code":               "Success",
			"LastUpdated":        now.Format(time.RFC3339),
			"InstanceProfileArn": fmt.Sprintf("arn:%s:iam::%s:instance-profile/%s", s.cfg.Partition, s.cfg.AccountID, profile),
			"InstanceProfileId":  "AIPAEMULATEDPROFILE00",
		}), true
	}
	return nil, false
}

func jsonDoc(v map[string]any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ") // maps of strings always marshal
	return b
}
