package awsauth

import (
	"context"
	"errors"
	"sort"
	"sync"
)

// fakeResolver stands in for AWS in the engine's unit tests: the engine is
// under test here, the AWS lookups have their own tests against the
// emulator.
type fakeResolver struct {
	mu      sync.Mutex
	account Account
	roles   map[string]string // permission set → ARN
	// ambiguous lists the roles claiming a permission set, when several do.
	ambiguous map[string][]string
	iamErr    error
	stsErr    error
	stale     error
	accounts  int // Account calls
	lookups   int // PermissionSetRoles calls
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{
		account: Account{Partition: "aws", ID: "111122223333"},
		roles: map[string]string{
			"Admin":          "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef",
			"Admin_ReadOnly": "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_ReadOnly_fedcba9876543210",
			"Dev+Ops":        "arn:aws:iam::111122223333:role/AWSReservedSSO_Dev+Ops_1111111111111111",
			"Admin.Ops":      "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin.Ops_2222222222222222",
			"a=b,c@d-e_f":    "arn:aws:iam::111122223333:role/AWSReservedSSO_a=b,c@d-e_f_3333333333333333",
			"Admin.Ops2":     "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin.Ops2_4444444444444444",
		},
	}
}

func (f *fakeResolver) Account(context.Context) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accounts++
	if f.stsErr != nil {
		return Account{}, f.stsErr
	}
	return f.account, nil
}

func (f *fakeResolver) PermissionSetRoles(_ context.Context, names []string) (PermissionSetLookup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	out := PermissionSetLookup{ARNs: map[string]string{}, Stale: f.stale}
	if f.iamErr != nil {
		return out, f.iamErr
	}
	for _, n := range names {
		if arn, ok := f.roles[n]; ok {
			out.ARNs[n] = arn
		}
		if all := f.ambiguous[n]; len(all) > 1 {
			if out.Ambiguous == nil {
				out.Ambiguous = map[string][]string{}
			}
			out.Ambiguous[n] = all
		}
	}
	for n := range f.roles {
		out.Existing = append(out.Existing, n)
	}
	sort.Strings(out.Existing)
	return out, nil
}

var errIAMDown = errors.New("ServiceUnavailable: IAM is down")
