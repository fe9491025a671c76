package awsemu

import (
	"errors"
	"fmt"
	"net/http"
)

// The admin API for EKS: tests and the demo look at a cluster's access
// entries (with the stale flag: made for a principal since recreated), ask
// whether a principal would get in, flip the authentication mode, and
// recreate a role.
func (s *Server) eksAdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_emulator/eks/{cluster}/access-entries", func(w http.ResponseWriter, r *http.Request) {
		entries, err := s.AccessEntries(r.PathValue("cluster"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, entries)
	})
	mux.HandleFunc("GET /_emulator/eks/{cluster}/authenticate", func(w http.ResponseWriter, r *http.Request) {
		e, err := s.Authenticate(r.PathValue("cluster"), r.URL.Query().Get("principalArn"))
		if errors.Is(err, errNoCluster) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		writeJSON(w, e)
	})
	mux.HandleFunc("POST /_emulator/eks/{cluster}/authentication-mode", func(w http.ResponseWriter, r *http.Request) {
		err := s.SetAuthenticationMode(r.PathValue("cluster"), r.URL.Query().Get("mode"))
		switch {
		case errors.Is(err, errNoCluster):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /_emulator/roles/recreate", func(w http.ResponseWriter, r *http.Request) {
		role, err := s.RecreateRole(r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintln(w, role.CreateDate.Format("2006-01-02T15:04:05Z"))
	})
}
