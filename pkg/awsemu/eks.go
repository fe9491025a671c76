package awsemu

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EKS speaks REST-JSON: the operation is the method and path
// (/clusters/{name}/access-entries/{principalArn}/...), bodies are JSON,
// timestamps are epoch seconds, and an error is a JSON body with __type
// and message plus the X-Amzn-ErrorType header (the wire shapes of
// aws-sdk-go-v2/service/eks's request and response snapshots). Only the
// calls access entries need are served: DescribeCluster, the access entry
// and access policy calls, and tags.

// Authentication modes of an EKS cluster (accessConfig.authenticationMode).
const (
	AuthModeConfigMap       = "CONFIG_MAP"
	AuthModeAPIAndConfigMap = "API_AND_CONFIG_MAP"
	AuthModeAPI             = "API"
)

// EKSCluster is a cluster the emulator knows.
type EKSCluster struct {
	Name string `json:"name"`
	// AuthenticationMode defaults to API_AND_CONFIG_MAP.
	AuthenticationMode string `json:"authenticationMode"`
}

// AccessEntry is an access entry as the emulator stores it.
type AccessEntry struct {
	ClusterName      string            `json:"clusterName"`
	PrincipalARN     string            `json:"principalArn"`
	AccessEntryARN   string            `json:"accessEntryArn"`
	Type             string            `json:"type"`
	Username         string            `json:"username"`
	KubernetesGroups []string          `json:"kubernetesGroups"`
	Tags             map[string]string `json:"tags"`
	CreatedAt        time.Time         `json:"createdAt"`
	ModifiedAt       time.Time         `json:"modifiedAt"`
	Policies         []AccessPolicy    `json:"accessPolicies"`
	// BoundPrincipalID is the role or user ID the entry was made for: EKS
	// stores it, and a principal deleted and created again under the same
	// ARN has another ID, so the entry no longer matches it.
	BoundPrincipalID string `json:"boundPrincipalId"`
	// Stale is set in admin answers when BoundPrincipalID is not the
	// principal's ID now (or the principal is gone).
	Stale bool `json:"stale"`
}

// AccessPolicy is an associated access policy.
type AccessPolicy struct {
	PolicyARN    string    `json:"policyArn"`
	ScopeType    string    `json:"scopeType"` // cluster or namespace
	Namespaces   []string  `json:"namespaces,omitempty"`
	AssociatedAt time.Time `json:"associatedAt"`
	ModifiedAt   time.Time `json:"modifiedAt"`
}

type eksCluster struct {
	EKSCluster
	createdAt time.Time
	entries   map[string]*AccessEntry // by principal ARN
}

// eksPolicies are the access policies EKS offers (`aws eks
// list-access-policies`; EKS user guide, "Review access policy
// permissions").
var eksPolicies = []string{
	"AmazonEKSAdminPolicy", "AmazonEKSClusterAdminPolicy", "AmazonEKSAdminViewPolicy", "AmazonEKSEditPolicy",
	"AmazonEKSViewPolicy", "AmazonEKSSecretReaderPolicy", "AmazonEKSAutoNodePolicy", "AmazonEKSLoadBalancingPolicy",
	"AmazonEKSNetworkingPolicy", "AmazonEKSBlockStoragePolicy", "AmazonEKSComputePolicy", "AmazonEKSHybridPolicy",
	"AmazonEKSClusterInsightsPolicy", "AmazonEKSBlockStorageClusterPolicy", "AmazonEKSComputeClusterPolicy",
	"AmazonEKSLoadBalancingClusterPolicy", "AmazonEKSNetworkingClusterPolicy", "AmazonAIOpsAssistantPolicy",
	"AmazonARCRegionSwitchScalingPolicy", "AmazonEMRJobPolicy", "AmazonSagemakerHyperpodClusterPolicy",
	"AmazonSagemakerHyperpodControllerPolicy", "AmazonSagemakerHyperpodSystemNamespacePolicy",
}

var entryTypes = []string{"STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX"}

type eksError struct {
	status        int
	code, message string
}

func eksErr(status int, code, format string, args ...any) *eksError {
	return &eksError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func writeEKSError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("X-Amzn-RequestId", newRequestID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": message})
}

func (s *Server) initEKS(clusters []EKSCluster) {
	s.eks = map[string]*eksCluster{}
	for _, c := range clusters {
		s.AddEKSCluster(c)
	}
}

// AddEKSCluster adds a cluster (or resets one of the same name).
func (s *Server) AddEKSCluster(c EKSCluster) {
	if c.AuthenticationMode == "" {
		c.AuthenticationMode = AuthModeAPIAndConfigMap
	}
	s.mu.Lock()
	s.eks[c.Name] = &eksCluster{EKSCluster: c, createdAt: time.Now().UTC(), entries: map[string]*AccessEntry{}}
	s.mu.Unlock()
}

// SetAuthenticationMode flips a cluster's authentication mode.
func (s *Server) SetAuthenticationMode(cluster, mode string) error {
	if !slices.Contains([]string{AuthModeConfigMap, AuthModeAPIAndConfigMap, AuthModeAPI}, mode) {
		return fmt.Errorf("awsemu: unknown authentication mode %q", mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.eks[cluster]
	if !ok {
		return fmt.Errorf("awsemu: %w %q", errNoCluster, cluster)
	}
	c.AuthenticationMode = mode
	return nil
}

// AccessEntries returns a copy of a cluster's entries, sorted by principal,
// each marked Stale when it no longer matches its principal.
func (s *Server) AccessEntries(cluster string) ([]AccessEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.eks[cluster]
	if !ok {
		return nil, fmt.Errorf("awsemu: %w %q", errNoCluster, cluster)
	}
	out := make([]AccessEntry, 0, len(c.entries))
	for _, e := range c.entries {
		cp := *e
		cp.KubernetesGroups = slices.Clone(e.KubernetesGroups)
		cp.Policies = slices.Clone(e.Policies)
		cp.Tags = cloneTags(e.Tags)
		id, _ := s.principalIDLocked(e.PrincipalARN)
		cp.Stale = id != e.BoundPrincipalID
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b AccessEntry) int { return cmp.Compare(a.PrincipalARN, b.PrincipalARN) })
	return out, nil
}

// Authenticate is what the cluster does when principalARN signs in: the
// entry that grants it access, or an error when none does — including an
// entry made for a principal that was deleted and created again since.
func (s *Server) Authenticate(cluster, principalARN string) (AccessEntry, error) {
	entries, err := s.AccessEntries(cluster)
	if err != nil {
		return AccessEntry{}, err
	}
	for _, e := range entries {
		if e.PrincipalARN != principalARN {
			continue
		}
		if e.Stale {
			return e, fmt.Errorf("the access entry for %s was made for another principal of that name (deleted and created again since): it grants nothing", principalARN)
		}
		return e, nil
	}
	return AccessEntry{}, fmt.Errorf("no access entry for %s", principalARN)
}

func cloneTags(t map[string]string) map[string]string {
	if t == nil {
		return nil
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

var errNoCluster = fmt.Errorf("no EKS cluster")

func (s *Server) eksRoutes(mux *http.ServeMux) {
	h := func(op string, fn func(r *http.Request, body map[string]json.RawMessage) (any, *eksError)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name := "eks:" + op
			s.count(name)
			if s.applyFault(w, r, name, writeEKSError) {
				return
			}
			var body map[string]json.RawMessage
			if r.Method == http.MethodPost || r.Method == http.MethodPut {
				b, err := io.ReadAll(r.Body)
				if err == nil && len(strings.TrimSpace(string(b))) > 0 {
					err = json.Unmarshal(b, &body)
				}
				if err != nil {
					writeEKSError(w, http.StatusBadRequest, "BadRequestException", "the request body is not valid JSON: "+err.Error())
					return
				}
			}
			out, e := fn(r, body)
			if e != nil {
				writeEKSError(w, e.status, e.code, e.message)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-RequestId", newRequestID())
			_ = json.NewEncoder(w).Encode(out)
		}
	}
	s.eksAdminRoutes(mux)
	const ae = "/clusters/{name}/access-entries"
	mux.HandleFunc("GET /clusters/{name}", h("DescribeCluster", s.describeCluster))
	mux.HandleFunc("POST "+ae, h("CreateAccessEntry", s.createAccessEntry))
	mux.HandleFunc("GET "+ae, h("ListAccessEntries", s.listAccessEntries))
	mux.HandleFunc("GET "+ae+"/{principal}", h("DescribeAccessEntry", s.describeAccessEntry))
	mux.HandleFunc("POST "+ae+"/{principal}", h("UpdateAccessEntry", s.updateAccessEntry))
	mux.HandleFunc("DELETE "+ae+"/{principal}", h("DeleteAccessEntry", s.deleteAccessEntry))
	mux.HandleFunc("POST "+ae+"/{principal}/access-policies", h("AssociateAccessPolicy", s.associateAccessPolicy))
	mux.HandleFunc("GET "+ae+"/{principal}/access-policies", h("ListAssociatedAccessPolicies", s.listAssociatedAccessPolicies))
	mux.HandleFunc("DELETE "+ae+"/{principal}/access-policies/{policy}", h("DisassociateAccessPolicy", s.disassociateAccessPolicy))
	mux.HandleFunc("GET /tags/{arn}", h("ListTagsForResource", s.listTags))
	mux.HandleFunc("POST /tags/{arn}", h("TagResource", s.tagResource))
	mux.HandleFunc("DELETE /tags/{arn}", h("UntagResource", s.untagResource))
}

// clusterLocked finds the cluster; with needAPI, access entries must be
// enabled (authentication mode API or API_AND_CONFIG_MAP).
func (s *Server) clusterLocked(name string, needAPI bool) (*eksCluster, *eksError) {
	c, ok := s.eks[name]
	if !ok {
		return nil, eksErr(http.StatusNotFound, "ResourceNotFoundException", "No cluster found for name: %s.", name)
	}
	if needAPI && c.AuthenticationMode == AuthModeConfigMap {
		return nil, eksErr(http.StatusBadRequest, "InvalidRequestException",
			"The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.")
	}
	return c, nil
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (s *Server) clusterARN(name string) string {
	return fmt.Sprintf("arn:%s:eks:%s:%s:cluster/%s", s.cfg.Partition, s.cfg.Region, s.cfg.AccountID, name)
}

func (s *Server) describeCluster(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, e := s.clusterLocked(r.PathValue("name"), false)
	if e != nil {
		return nil, e
	}
	return map[string]any{"cluster": map[string]any{
		"name": c.Name, "arn": s.clusterARN(c.Name), "status": "ACTIVE", "version": "1.33",
		"createdAt":    epoch(c.createdAt),
		"accessConfig": map[string]any{"authenticationMode": c.AuthenticationMode},
	}}, nil
}

func entryJSON(e *AccessEntry) map[string]any {
	out := map[string]any{
		"clusterName": e.ClusterName, "principalArn": e.PrincipalARN, "accessEntryArn": e.AccessEntryARN,
		"type": e.Type, "username": e.Username, "kubernetesGroups": nonNil(e.KubernetesGroups),
		"createdAt": epoch(e.CreatedAt), "modifiedAt": epoch(e.ModifiedAt), "tags": nonNilMap(e.Tags),
	}
	return out
}

func str(body map[string]json.RawMessage, key string) (string, bool) {
	raw, ok := body[key]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

func strs(body map[string]json.RawMessage, key string) ([]string, bool) {
	raw, ok := body[key]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	var v []string
	_ = json.Unmarshal(raw, &v)
	return v, true
}

// principalIDLocked returns the ID of the IAM role or user an ARN names,
// exactly as IAM knows it (a role's ARN with its path), or false.
func (s *Server) principalIDLocked(principal string) (string, bool) {
	parts := strings.SplitN(principal, ":", 6)
	if len(parts) != 6 {
		return "", false
	}
	res := parts[5]
	name := res[strings.LastIndexByte(res, '/')+1:]
	switch {
	case strings.HasPrefix(res, "role/"):
		r, ok := s.roles[roleKey(name)]
		if !ok || s.roleARN(r) != principal {
			return "", false
		}
		return r.RoleID, true
	case strings.HasPrefix(res, "user/"):
		u, ok := s.users[roleKey(name)]
		if !ok || s.userARN(u) != principal {
			return "", false
		}
		return u.UserID, true
	}
	return "", false
}

// validateEntryFields applies the EKS rules on type, username and groups.
// The messages EKS sends are reproduced where they are known (reported
// in issues: "The kubernetes group name system:masters is invalid, it
// cannot start with system:", "The username must not begin with
// system:"); the others are written in the same style.
func (s *Server) validateEntryFields(typ string, username *string, groups []string) *eksError {
	bad := func(format string, args ...any) *eksError {
		return eksErr(http.StatusBadRequest, "InvalidParameterException", format, args...)
	}
	if typ != "STANDARD" {
		if len(groups) > 0 {
			return bad("Kubernetes groups cannot be specified for access entries of type %s.", typ)
		}
		if username != nil && *username != "" {
			return bad("A username cannot be specified for access entries of type %s.", typ)
		}
		return nil
	}
	for _, g := range groups {
		if strings.HasPrefix(g, "system:") {
			return bad("The kubernetes group name %s is invalid, it cannot start with system:", g)
		}
	}
	if username != nil && *username != "" {
		u := *username
		for _, p := range []string{"system:", "eks:", "aws:", "amazon:", "iam:"} {
			if strings.HasPrefix(u, p) {
				return bad("The username must not begin with %s", p)
			}
		}
		for _, t := range []string{"{{SessionName}}", "{{SessionNameRaw}}"} {
			if i := strings.Index(u, t); i >= 0 && !strings.Contains(u[:i], ":") {
				return bad("The username must include a colon before %s.", t)
			}
		}
	}
	return nil
}

func (s *Server) createAccessEntry(r *http.Request, body map[string]json.RawMessage) (any, *eksError) {
	principal, _ := str(body, "principalArn")
	typ, hasType := str(body, "type")
	if !hasType {
		typ = "STANDARD"
	}
	username, hasUsername := str(body, "username")
	groups, _ := strs(body, "kubernetesGroups")
	var tags map[string]string
	if raw, ok := body["tags"]; ok {
		_ = json.Unmarshal(raw, &tags)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, e := s.clusterLocked(r.PathValue("name"), true)
	if e != nil {
		return nil, e
	}
	if principal == "" {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", "principalArn is required.")
	}
	if !slices.Contains(entryTypes, typ) {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", "The type %s is not valid; valid types are %s.", typ, strings.Join(entryTypes, ", "))
	}
	if strings.Contains(principal, ":sts:") || !strings.HasPrefix(principal, "arn:") {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", "The principalArn parameter format is not valid")
	}
	// EKS checks the principal against IAM: a role must be named by its
	// ARN with its path (a path-stripped SSO role ARN is refused as
	// "invalid principal": terraform-aws-modules/terraform-aws-eks#2969).
	id, ok := s.principalIDLocked(principal)
	if !ok || strings.Contains(principal, ":role/aws-service-role/") {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", "The specified principalArn is invalid: invalid principal.")
	}
	if typ != "STANDARD" && !strings.Contains(principal, ":role/") {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", "Access entries of type %s require an IAM role as principal.", typ)
	}
	if _, dup := c.entries[principal]; dup {
		return nil, eksErr(http.StatusConflict, "ResourceInUseException", "The specified access entry resource is already in use on this cluster.")
	}
	var up *string
	if hasUsername {
		up = &username
	}
	if e := s.validateEntryFields(typ, up, groups); e != nil {
		return nil, e
	}
	now := time.Now().UTC()
	ent := &AccessEntry{ClusterName: c.Name, PrincipalARN: principal, Type: typ, Username: username,
		KubernetesGroups: groups, Tags: tags, CreatedAt: now, ModifiedAt: now, BoundPrincipalID: id}
	// What EKS sets itself (user guide, "Create access entries": the
	// generated usernames; node entries report the system:nodes group).
	parts := strings.SplitN(principal, ":", 6)
	res := parts[5]
	name := res[strings.LastIndexByte(res, '/')+1:]
	kind := res[:strings.IndexByte(res, '/')]
	switch {
	case typ == "EC2_LINUX" || typ == "EC2_WINDOWS":
		ent.Username, ent.KubernetesGroups = "system:node:{{EC2PrivateDNSName}}", []string{"system:nodes"}
	case typ == "FARGATE_LINUX" || typ == "HYBRID_LINUX":
		ent.Username, ent.KubernetesGroups = "system:node:{{SessionName}}", []string{"system:nodes"}
	case username == "" && kind == "role":
		ent.Username = fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/{{SessionName}}", parts[1], parts[4], name)
	case username == "":
		ent.Username = principal
	}
	ent.AccessEntryARN = fmt.Sprintf("arn:%s:eks:%s:%s:access-entry/%s/%s/%s/%s/%s", s.cfg.Partition, s.cfg.Region, s.cfg.AccountID,
		c.Name, kind, parts[4], name, newUUID())
	c.entries[principal] = ent
	return map[string]any{"accessEntry": entryJSON(ent)}, nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) entryLocked(r *http.Request) (*eksCluster, *AccessEntry, *eksError) {
	c, e := s.clusterLocked(r.PathValue("name"), true)
	if e != nil {
		return nil, nil, e
	}
	ent, ok := c.entries[r.PathValue("principal")]
	if !ok {
		return c, nil, eksErr(http.StatusNotFound, "ResourceNotFoundException",
			"The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'.")
	}
	return c, ent, nil
}

func (s *Server) describeAccessEntry(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	return map[string]any{"accessEntry": entryJSON(ent)}, nil
}

func (s *Server) updateAccessEntry(r *http.Request, body map[string]json.RawMessage) (any, *eksError) {
	username, hasUsername := str(body, "username")
	groups, hasGroups := strs(body, "kubernetesGroups")
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	var up *string
	if hasUsername {
		up = &username
	}
	if e := s.validateEntryFields(ent.Type, up, groups); e != nil {
		return nil, e
	}
	if hasUsername {
		ent.Username = username
	}
	if hasGroups {
		ent.KubernetesGroups = groups
	}
	ent.ModifiedAt = time.Now().UTC()
	return map[string]any{"accessEntry": entryJSON(ent)}, nil
}

func (s *Server) deleteAccessEntry(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	delete(c.entries, ent.PrincipalARN)
	return map[string]any{}, nil
}

// page cuts a sorted list at nextToken (the last key of the previous page,
// base64) and maxResults (1-100, default 100).
func page(q url.Values, keys []string) ([]string, string, *eksError) {
	max := 100
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return nil, "", &eksError{http.StatusBadRequest, "InvalidParameterException", "maxResults must be between 1 and 100."}
		}
		max = n
	}
	start := 0
	if t := q.Get("nextToken"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil {
			return nil, "", &eksError{http.StatusBadRequest, "InvalidParameterException", "The nextToken is not valid."}
		}
		start, _ = slices.BinarySearch(keys, string(b))
		if start < len(keys) && keys[start] == string(b) {
			start++
		}
	}
	keys = keys[start:]
	next := ""
	if len(keys) > max {
		keys = keys[:max]
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[max-1]))
	}
	return keys, next, nil
}

func (s *Server) listAccessEntries(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, e := s.clusterLocked(r.PathValue("name"), true)
	if e != nil {
		return nil, e
	}
	filter := r.URL.Query().Get("associatedPolicyArn")
	keys := make([]string, 0, len(c.entries))
	for k, ent := range c.entries {
		if filter != "" && !slices.ContainsFunc(ent.Policies, func(p AccessPolicy) bool { return p.PolicyARN == filter }) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	got, next, e := page(r.URL.Query(), keys)
	if e != nil {
		return nil, e
	}
	out := map[string]any{"accessEntries": nonNil(got)}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func policyJSON(p AccessPolicy) map[string]any {
	return map[string]any{"policyArn": p.PolicyARN, "associatedAt": epoch(p.AssociatedAt), "modifiedAt": epoch(p.ModifiedAt),
		"accessScope": map[string]any{"type": p.ScopeType, "namespaces": nonNil(p.Namespaces)}}
}

func (s *Server) policyARN(name string) string {
	return fmt.Sprintf("arn:%s:eks::aws:cluster-access-policy/%s", s.cfg.Partition, name)
}

func (s *Server) associateAccessPolicy(r *http.Request, body map[string]json.RawMessage) (any, *eksError) {
	policy, _ := str(body, "policyArn")
	var scope struct {
		Type       string   `json:"type"`
		Namespaces []string `json:"namespaces"`
	}
	if raw, ok := body["accessScope"]; ok {
		_ = json.Unmarshal(raw, &scope)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	bad := func(format string, args ...any) (any, *eksError) {
		return nil, eksErr(http.StatusBadRequest, "InvalidParameterException", format, args...)
	}
	if ent.Type != "STANDARD" {
		return bad(`This operation can only be performed on Access Entries with a type of "STANDARD".`)
	}
	if !slices.ContainsFunc(eksPolicies, func(n string) bool { return s.policyARN(n) == policy }) {
		return bad("The specified policyArn %s is not valid.", policy)
	}
	switch {
	case scope.Type == "cluster" && len(scope.Namespaces) > 0:
		return bad("Namespaces cannot be specified with an access scope of type cluster.")
	case scope.Type == "namespace" && len(scope.Namespaces) == 0:
		return bad("At least one namespace is required with an access scope of type namespace.")
	case scope.Type != "cluster" && scope.Type != "namespace":
		return bad("The access scope type %q is not valid.", scope.Type)
	}
	now := time.Now().UTC()
	p := AccessPolicy{PolicyARN: policy, ScopeType: scope.Type, Namespaces: scope.Namespaces, AssociatedAt: now, ModifiedAt: now}
	if i := slices.IndexFunc(ent.Policies, func(x AccessPolicy) bool { return x.PolicyARN == policy }); i >= 0 {
		p.AssociatedAt = ent.Policies[i].AssociatedAt
		ent.Policies[i] = p
	} else {
		ent.Policies = append(ent.Policies, p)
	}
	return map[string]any{"clusterName": c.Name, "principalArn": ent.PrincipalARN, "associatedAccessPolicy": policyJSON(p)}, nil
}

func (s *Server) listAssociatedAccessPolicies(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	byARN := map[string]AccessPolicy{}
	keys := make([]string, 0, len(ent.Policies))
	for _, p := range ent.Policies {
		byARN[p.PolicyARN] = p
		keys = append(keys, p.PolicyARN)
	}
	slices.Sort(keys)
	got, next, e := page(r.URL.Query(), keys)
	if e != nil {
		return nil, e
	}
	list := make([]any, 0, len(got))
	for _, k := range got {
		list = append(list, policyJSON(byARN[k]))
	}
	out := map[string]any{"clusterName": c.Name, "principalArn": ent.PrincipalARN, "associatedAccessPolicies": list}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Server) disassociateAccessPolicy(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ent, e := s.entryLocked(r)
	if e != nil {
		return nil, e
	}
	policy := r.PathValue("policy")
	i := slices.IndexFunc(ent.Policies, func(x AccessPolicy) bool { return x.PolicyARN == policy })
	if i < 0 {
		return nil, eksErr(http.StatusNotFound, "ResourceNotFoundException", "The specified policy %s is not associated with the access entry.", policy)
	}
	ent.Policies = slices.Delete(ent.Policies, i, i+1)
	return map[string]any{}, nil
}

// entryByARNLocked finds an access entry by its own ARN (tags address
// resources by ARN).
func (s *Server) entryByARNLocked(arn string) (*AccessEntry, *eksError) {
	for _, c := range s.eks {
		for _, e := range c.entries {
			if e.AccessEntryARN == arn {
				return e, nil
			}
		}
	}
	return nil, eksErr(http.StatusNotFound, "NotFoundException", "Resource %s was not found.", arn)
}

func (s *Server) listTags(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent, e := s.entryByARNLocked(r.PathValue("arn"))
	if e != nil {
		return nil, e
	}
	return map[string]any{"tags": nonNilMap(ent.Tags)}, nil
}

func (s *Server) tagResource(r *http.Request, body map[string]json.RawMessage) (any, *eksError) {
	var tags map[string]string
	if raw, ok := body["tags"]; ok {
		_ = json.Unmarshal(raw, &tags)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ent, e := s.entryByARNLocked(r.PathValue("arn"))
	if e != nil {
		return nil, e
	}
	if len(tags) == 0 {
		return nil, eksErr(http.StatusBadRequest, "BadRequestException", "tags must not be empty.")
	}
	if ent.Tags == nil {
		ent.Tags = map[string]string{}
	}
	for k, v := range tags {
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, eksErr(http.StatusBadRequest, "BadRequestException", "Tag keys starting with aws: are reserved.")
		}
		ent.Tags[k] = v
	}
	return map[string]any{}, nil
}

func (s *Server) untagResource(r *http.Request, _ map[string]json.RawMessage) (any, *eksError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ent, e := s.entryByARNLocked(r.PathValue("arn"))
	if e != nil {
		return nil, e
	}
	for _, k := range r.URL.Query()["tagKeys"] {
		delete(ent.Tags, k)
	}
	return map[string]any{}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
