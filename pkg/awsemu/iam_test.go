package awsemu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// manyRoles returns n roles: SSO roles in three path variants and plain ones.
func manyRoles(n int) []Role {
	regions := []string{"", "eu-west-1", "ap-southeast-2"}
	roles := make([]Role, 0, n)
	for i := range n {
		if i%5 == 4 {
			roles = append(roles, Role{Name: fmt.Sprintf("plain-%04d", i)})
			continue
		}
		roles = append(roles, SSORole(fmt.Sprintf("PS%04d", i), RandomSuffix(), regions[i%3]))
	}
	return roles
}

func isSorted(roles []types.Role) bool {
	return slices.IsSortedFunc(roles, func(a, b types.Role) int {
		return strings.Compare(*a.Path+"\x00"+*a.RoleName, *b.Path+"\x00"+*b.RoleName)
	})
}

func TestListRolesPaginator(t *testing.T) {
	t.Parallel()
	const total = 2500
	cases := []struct {
		name        string
		maxItems    int32 // 0: leave MaxItems unset (IAM default 100)
		maxPageSize int
		prefix      string
		wantRoles   int
		wantPages   int
	}{
		{"MaxItems 1000", 1000, 0, "", total, 3},
		{"MaxPageSize below MaxItems", 1000, 300, "", total, 9},
		{"default MaxItems", 0, 0, "", total, 25},
		{"MaxItems 7 and a region prefix", 7, 0, "/aws-reserved/sso.amazonaws.com/eu-west-1/", 666, 96},
		{"SSO prefix", 1000, 0, "/aws-reserved/sso.amazonaws.com/", 2000, 2},
	}
	roles := manyRoles(total)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, cfg := startEmulator(t, Config{Roles: roles, MaxPageSize: tc.maxPageSize})
			in := &iam.ListRolesInput{}
			if tc.prefix != "" {
				in.PathPrefix = aws.String(tc.prefix)
			}
			p := iam.NewListRolesPaginator(iam.NewFromConfig(cfg), in, func(o *iam.ListRolesPaginatorOptions) {
				o.Limit = tc.maxItems
			})
			var got []types.Role
			pages := 0
			for p.HasMorePages() {
				out, err := p.NextPage(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if limit := min(int(cmpOr(tc.maxItems, 100)), cmpOr(tc.maxPageSize, 1000)); len(out.Roles) > limit {
					t.Fatalf("page %d has %d roles, limit %d", pages, len(out.Roles), limit)
				}
				got = append(got, out.Roles...)
			}
			if len(got) != tc.wantRoles || pages != tc.wantPages {
				t.Errorf("got %d roles in %d pages, want %d in %d", len(got), pages, tc.wantRoles, tc.wantPages)
			}
			wantCalls(t, s, "iam:ListRoles", tc.wantPages)
			if !isSorted(got) {
				t.Error("roles are not in (path, name) order")
			}
			seen := map[string]bool{}
			for _, r := range got {
				if seen[*r.RoleName] {
					t.Fatalf("role %s listed twice", *r.RoleName)
				}
				seen[*r.RoleName] = true
				if tc.prefix != "" && !strings.HasPrefix(*r.Path, tc.prefix) {
					t.Fatalf("role %s has path %s outside prefix %s", *r.RoleName, *r.Path, tc.prefix)
				}
			}
		})
	}
}

func cmpOr[T int | int32](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func TestListRolesFields(t *testing.T) {
	t.Parallel()
	created := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
	role := SSORole("Admin", "0123456789abcdef", "eu-west-1")
	role.RoleID, role.CreateDate = "AROAEXAMPLEID00000001", created
	_, cfg := startEmulator(t, Config{Partition: "aws-cn", AccountID: "123456789012", Roles: []Role{role, {Name: "plain"}}})

	out, err := iam.NewFromConfig(cfg).ListRoles(t.Context(), &iam.ListRolesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if out.IsTruncated || out.Marker != nil || len(out.Roles) != 2 {
		t.Fatalf("IsTruncated=%v Marker=%v roles=%d, want one complete page of 2", out.IsTruncated, out.Marker, len(out.Roles))
	}
	plain, sso := out.Roles[0], out.Roles[1] // "/" sorts first
	if *plain.Path != "/" || *plain.Arn != "arn:aws-cn:iam::123456789012:role/plain" || !strings.HasPrefix(*plain.RoleId, "AROA") || plain.CreateDate == nil {
		t.Errorf("plain role: %+v", plain)
	}
	wantARN := "arn:aws-cn:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef"
	if *sso.Arn != wantARN || *sso.RoleId != "AROAEXAMPLEID00000001" || !sso.CreateDate.Equal(created) {
		t.Errorf("SSO role: Arn=%s RoleId=%s CreateDate=%v", *sso.Arn, *sso.RoleId, sso.CreateDate)
	}

	empty, err := iam.NewFromConfig(cfg).ListRoles(t.Context(), &iam.ListRolesInput{PathPrefix: aws.String("/none/")})
	if err != nil || len(empty.Roles) != 0 || empty.IsTruncated {
		t.Errorf("empty listing: %+v, %v", empty, err)
	}
}

func TestListRolesValidation(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{Roles: manyRoles(10)})
	client := iam.NewFromConfig(cfg)
	for _, in := range []*iam.ListRolesInput{
		{PathPrefix: aws.String("aws-reserved/")},
		{PathPrefix: aws.String("/aws-reserved")},
		{PathPrefix: aws.String("")},
		{MaxItems: aws.Int32(0)},
		{MaxItems: aws.Int32(1001)},
		{MaxItems: aws.Int32(-1)},
		{Marker: aws.String("not base64 !")},
	} {
		_, err := client.ListRoles(t.Context(), in)
		apiError(t, err, "ValidationError", 400)
	}
	wantCalls(t, s, "iam:ListRoles", 7) // client errors are not retried

	if _, err := client.ListRoles(t.Context(), &iam.ListRolesInput{MaxItems: aws.Int32(1000)}); err != nil {
		t.Errorf("MaxItems 1000: %v", err)
	}
}

// A marker must keep working when roles change between pages: no crash, no
// role listed twice, and roles after the marker still come.
func TestListRolesMarkerSurvivesChanges(t *testing.T) {
	t.Parallel()
	var roles []Role
	for i := range 20 {
		roles = append(roles, Role{Name: fmt.Sprintf("role-%02d", i)})
	}
	s, cfg := startEmulator(t, Config{Roles: roles})
	client := iam.NewFromConfig(cfg)

	first, err := client.ListRoles(t.Context(), &iam.ListRolesInput{MaxItems: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	if !first.IsTruncated || first.Marker == nil || *first.Roles[9].RoleName != "role-09" {
		t.Fatalf("first page: truncated=%v marker=%v", first.IsTruncated, first.Marker)
	}
	s.DeleteRole("role-09") // the role the marker points at
	s.DeleteRole("role-10") // the next one
	s.PutRole(Role{Name: "role-05a"})
	s.PutRole(Role{Name: "role-15a"})

	rest, err := client.ListRoles(t.Context(), &iam.ListRolesInput{Marker: first.Marker, MaxItems: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rest.Roles {
		names = append(names, *r.RoleName)
	}
	want := []string{"role-11", "role-12", "role-13", "role-14", "role-15", "role-15a", "role-16", "role-17", "role-18", "role-19"}
	if !slices.Equal(names, want) || rest.IsTruncated {
		t.Errorf("second page %v (truncated %v), want %v", names, rest.IsTruncated, want)
	}
}

func TestGetRole(t *testing.T) {
	t.Parallel()
	role := SSORole("Dev_Ops", "0123456789abcdef", "")
	s, cfg := startEmulator(t, Config{Roles: []Role{role}})
	client := iam.NewFromConfig(cfg)

	out, err := client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(role.Name)})
	if err != nil {
		t.Fatal(err)
	}
	wantARN := "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_Ops_0123456789abcdef"
	if *out.Role.RoleName != role.Name || *out.Role.Path != "/aws-reserved/sso.amazonaws.com/" || *out.Role.Arn != wantARN {
		t.Errorf("GetRole: name=%s path=%s arn=%s", *out.Role.RoleName, *out.Role.Path, *out.Role.Arn)
	}

	// IAM role names are case-insensitive; the stored spelling comes back.
	out, err = client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String(strings.ToLower(role.Name))})
	if err != nil || *out.Role.RoleName != role.Name {
		t.Errorf("case-insensitive GetRole: %v, %v", out, err)
	}

	_, err = client.GetRole(t.Context(), &iam.GetRoleInput{RoleName: aws.String("missing")})
	var nse *types.NoSuchEntityException
	if !errors.As(err, &nse) {
		t.Fatalf("missing role: %T %v, want *types.NoSuchEntityException", err, err)
	}
	apiError(t, err, "NoSuchEntity", 404)
	wantCalls(t, s, "iam:GetRole", 3)
}

// Many goroutines read through the SDK while roles change underneath; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s, cfg := startEmulator(t, Config{Roles: append(manyRoles(300), SSORole("Admin", RandomSuffix(), ""))})
	client := iam.NewFromConfig(cfg)
	const readers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, readers*rounds)
	for range readers {
		wg.Go(func() {
			for range rounds {
				p := iam.NewListRolesPaginator(client, &iam.ListRolesInput{MaxItems: aws.Int32(50)})
				for p.HasMorePages() {
					if _, err := p.NextPage(t.Context()); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			s.PutRole(Role{Name: fmt.Sprintf("churn-%d", i)})
			s.DeleteRole(fmt.Sprintf("churn-%d", i-1))
			if _, err := s.RotatePermissionSet("Admin"); err != nil {
				errs <- err
				return
			}
			s.InjectFault("iam:GetRole", Fault{Code: "Throttling", Times: 1})
			s.AllCalls()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s.Calls("iam:ListRoles") < readers*rounds*6 {
		t.Errorf("only %d ListRoles calls", s.Calls("iam:ListRoles"))
	}
}
