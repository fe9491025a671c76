package awsemu

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// IAM and STS speak the AWS Query protocol: POST / with a form body carrying
// Action and Version, answered with XML.

var (
	// queryNamespaces also lists the services the emulator knows.
	queryNamespaces = map[string]string{
		"iam": "https://iam.amazonaws.com/doc/2010-05-08/",
		"sts": "https://sts.amazonaws.com/doc/2011-06-15/",
	}
	queryActions  = map[string]string{"ListRoles": "iam", "GetRole": "iam", "GetCallerIdentity": "sts"}
	queryVersions = map[string]string{"2010-05-08": "iam", "2011-06-15": "sts"}
)

type queryError struct {
	status        int
	code, message string
}

func validationError(format string, args ...any) *queryError {
	return &queryError{http.StatusBadRequest, "ValidationError", fmt.Sprintf(format, args...)}
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeQueryError("")(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	action := r.Form.Get("Action")
	if action == "" {
		writeQueryError("")(w, http.StatusBadRequest, "MissingAction", "Missing Action")
		return
	}
	svc := queryService(r, action)
	if svc == "" {
		writeQueryError("")(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s", action))
		return
	}
	name := svc + ":" + action
	s.count(name)
	if s.applyFault(w, r, name, writeQueryError(svc)) {
		return
	}

	var result any
	var qerr *queryError
	switch name {
	case "iam:ListRoles":
		result, qerr = s.listRoles(r.Form)
	case "iam:GetRole":
		result, qerr = s.getRole(r.Form)
	case "sts:GetCallerIdentity":
		result = s.getCallerIdentity()
	default:
		qerr = &queryError{http.StatusBadRequest, "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version %s", action, r.Form.Get("Version"))}
	}
	if qerr != nil {
		writeQueryError(svc)(w, qerr.status, qerr.code, qerr.message)
		return
	}
	writeXML(w, http.StatusOK, queryResponse{
		XMLName:   xml.Name{Local: action + "Response"},
		Xmlns:     queryNamespaces[svc],
		Result:    result,
		RequestID: newRequestID(),
	})
}

// queryService tells IAM from STS: by the action when the emulator knows it,
// else by the SigV4 credential scope, else by the API version.
func queryService(r *http.Request, action string) string {
	if svc, ok := queryActions[action]; ok {
		return svc
	}
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iam/aws4_request, ...
	_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	cred, _, _ = strings.Cut(cred, ",")
	if scope := strings.Split(cred, "/"); len(scope) == 5 && queryNamespaces[scope[3]] != "" {
		return scope[3]
	}
	return queryVersions[r.Form.Get("Version")]
}

type queryResponse struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	Result    any    // a *Result type; its XMLName names the element
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr,omitempty"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// writeQueryError returns a writer of the Query protocol's error document
// for svc ("" when the service is unknown).
func writeQueryError(svc string) func(w http.ResponseWriter, status int, code, message string) {
	return func(w http.ResponseWriter, status int, code, message string) {
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		writeXML(w, status, errorResponse{
			Xmlns:     queryNamespaces[svc],
			Type:      typ,
			Code:      code,
			Message:   message,
			RequestID: newRequestID(),
		})
	}
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	w.Write(body)
}

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type xmlRole struct {
	Path       string
	RoleName   string
	RoleID     string `xml:"RoleId"`
	Arn        string
	CreateDate string
}

func (s *Server) xmlRole(r Role) xmlRole {
	return xmlRole{
		Path:       r.Path,
		RoleName:   r.Name,
		RoleID:     r.RoleID,
		Arn:        s.roleARN(r),
		CreateDate: r.CreateDate.Format(time.RFC3339),
	}
}

type listRolesResult struct {
	XMLName     xml.Name `xml:"ListRolesResult"`
	IsTruncated bool
	Marker      string `xml:",omitempty"`
	Roles       struct {
		Member []xmlRole `xml:"member"`
	}
}

// listRoles pages through the roles under PathPrefix in (path, name) order.
// The Marker is the sort key of the last role returned, so a listing
// continues correctly even when roles change between pages.
func (s *Server) listRoles(form url.Values) (any, *queryError) {
	prefix := "/"
	if form.Has("PathPrefix") {
		prefix = form.Get("PathPrefix")
	}
	if len(prefix) > 512 || !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return nil, validationError("The specified value for pathPrefix is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.")
	}
	maxItems := 100
	if form.Has("MaxItems") {
		n, err := strconv.Atoi(form.Get("MaxItems"))
		if err != nil || n < 1 || n > 1000 {
			return nil, validationError("1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", form.Get("MaxItems"))
		}
		maxItems = n
	}
	pageSize := maxItems
	if s.cfg.MaxPageSize > 0 {
		pageSize = min(pageSize, s.cfg.MaxPageSize)
	}
	var after string
	if form.Get("Marker") != "" {
		b, err := base64.RawURLEncoding.DecodeString(form.Get("Marker"))
		if err != nil {
			return nil, validationError("Invalid Marker.")
		}
		after = string(b)
	}

	var roles []Role
	s.mu.Lock()
	for _, r := range s.roles {
		if strings.HasPrefix(r.Path, prefix) && (after == "" || sortKey(r) > after) {
			roles = append(roles, r)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(roles, func(a, b Role) int { return cmp.Compare(sortKey(a), sortKey(b)) })

	res := listRolesResult{}
	if len(roles) > pageSize {
		roles = roles[:pageSize]
		res.IsTruncated = true
		res.Marker = base64.RawURLEncoding.EncodeToString([]byte(sortKey(roles[len(roles)-1])))
	}
	for _, r := range roles {
		res.Roles.Member = append(res.Roles.Member, s.xmlRole(r))
	}
	return res, nil
}

type getRoleResult struct {
	XMLName xml.Name `xml:"GetRoleResult"`
	Role    xmlRole
}

func (s *Server) getRole(form url.Values) (any, *queryError) {
	name := form.Get("RoleName")
	if name == "" {
		return nil, validationError("1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	r, ok := s.roles[roleKey(name)]
	s.mu.Unlock()
	if !ok {
		return nil, &queryError{http.StatusNotFound, "NoSuchEntity", fmt.Sprintf("The role with name %s cannot be found.", name)}
	}
	return getRoleResult{Role: s.xmlRole(r)}, nil
}

type getCallerIdentityResult struct {
	XMLName xml.Name `xml:"GetCallerIdentityResult"`
	Arn     string
	UserID  string `xml:"UserId"`
	Account string
}

func (s *Server) getCallerIdentity() any {
	// For an assumed role, UserId is "<role id>:<session name>".
	session := s.cfg.CallerARN[strings.LastIndexByte(s.cfg.CallerARN, '/')+1:]
	return getCallerIdentityResult{
		Arn:     s.cfg.CallerARN,
		UserID:  "AROAEMULATEDCALLER000:" + session,
		Account: s.cfg.AccountID,
	}
}
