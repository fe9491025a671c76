package awsemu

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// The admin API drives an emulator running as a separate process (the demo,
// load tests). It is neither counted nor subject to faults.

type adminRole struct {
	Role
	Arn string `json:"arn"`
}

type adminFault struct {
	Action     string `json:"action"`
	Code       string `json:"code"`
	HTTPStatus int    `json:"httpStatus"`
	Message    string `json:"message"`
	DelayMs    int    `json:"delayMs"`
	Times      int    `json:"times"`
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_emulator/roles", s.adminGetRoles)
	mux.HandleFunc("PUT /_emulator/roles", s.adminPutRoles)
	mux.HandleFunc("POST /_emulator/rotate", s.adminRotate)
	mux.HandleFunc("GET /_emulator/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.AllCalls())
	})
	mux.HandleFunc("DELETE /_emulator/calls", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/faults", s.adminInjectFault)
	mux.HandleFunc("DELETE /_emulator/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/_emulator/", http.NotFound) // not an IAM/STS request
}

// adminGetRoles lists every role in ListRoles order, with its ARN.
func (s *Server) adminGetRoles(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	roles := make([]adminRole, 0, len(s.roles))
	for _, r := range s.roles {
		roles = append(roles, adminRole{Role: r, Arn: s.roleARN(r)})
	}
	s.mu.Unlock()
	slices.SortFunc(roles, func(a, b adminRole) int { return cmp.Compare(sortKey(a.Role), sortKey(b.Role)) })
	writeJSON(w, roles)
}

// adminPutRoles replaces every role with the JSON array in the body.
func (s *Server) adminPutRoles(w http.ResponseWriter, r *http.Request) {
	var roles []Role
	if err := json.NewDecoder(r.Body).Decode(&roles); err != nil {
		http.Error(w, "roles: "+err.Error(), http.StatusBadRequest)
		return
	}
	for i, role := range roles {
		if role.Name == "" {
			http.Error(w, fmt.Sprintf("roles[%d]: name is required", i), http.StatusBadRequest)
			return
		}
	}
	s.SetRoles(roles)
	w.WriteHeader(http.StatusNoContent)
}

// adminRotate answers with the new role name as plain text, for shell use.
func (s *Server) adminRotate(w http.ResponseWriter, r *http.Request) {
	ps := r.URL.Query().Get("permissionSet")
	if ps == "" {
		http.Error(w, "permissionSet is required", http.StatusBadRequest)
		return
	}
	name, err := s.RotatePermissionSet(ps)
	switch {
	case errors.Is(err, errNoSSORole):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
	default:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, name)
	}
}

func (s *Server) adminInjectFault(w http.ResponseWriter, r *http.Request) {
	var f adminFault
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
		http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
		return
	}
	if f.Action == "" {
		http.Error(w, "fault: action is required", http.StatusBadRequest)
		return
	}
	s.InjectFault(f.Action, Fault{
		Code:       f.Code,
		HTTPStatus: f.HTTPStatus,
		Message:    f.Message,
		Delay:      time.Duration(f.DelayMs) * time.Millisecond,
		Times:      f.Times,
	})
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}
