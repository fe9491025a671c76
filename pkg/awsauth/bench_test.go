package awsauth

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// The engine's cost per document size: `make bench` prints these figures
// (go test -run '^$' -bench . -benchmem ./pkg/awsauth/). The documents are
// shaped like a real aws-auth: mostly SSO permission sets already resolved
// by the webhook, some plain role ARNs, a node role, comments; the largest
// is close to the 1 MiB ConfigMap limit.

// benchSizes are the entry counts measured; benchMax is "as many as fit in
// a ConfigMap" (about 6,000 entries of this shape).
var benchSizes = []int{10, 100, 1000, benchMax}

const benchMax = -1

const benchAccount = "111122223333"

func benchPermissionSet(i int) string { return fmt.Sprintf("Team%04d", i) }

func benchRoleARN(i int) string {
	return fmt.Sprintf("arn:aws:iam::%s:role/AWSReservedSSO_%s_%016x", benchAccount, benchPermissionSet(i), uint64(i)*0x9e3779b97f4a7c15)
}

// benchEntry is one mapRoles entry, ~170 bytes.
func benchEntry(b *strings.Builder, i int) {
	switch {
	case i%10 == 0:
		fmt.Fprintf(b, "# team %d: on-call platform engineers\n", i)
		fallthrough
	case i%3 != 2:
		fmt.Fprintf(b, "- rolearn: %s\n  permissionset: %s\n  username: team%04d:{{SessionName}}\n  groups:\n    - team%04d-admins\n    - team%04d-viewers\n",
			benchRoleARN(i), benchPermissionSet(i), i, i, i)
	default:
		fmt.Fprintf(b, "- rolearn: arn:aws:iam::%s:role/ci-deployer-%04d\n  username: ci-%04d\n  groups:\n    - ci-deployers\n    - team%04d-viewers\n",
			benchAccount, i, i, i)
	}
}

// benchDocument returns aws-auth data with n mapRoles entries (the node
// role first) and a small mapUsers. With n == benchMax it holds as many
// entries as fit under MaxConfigMapBytes, leaving room for an edit.
func benchDocument(n int) (map[string]string, int) {
	var roles strings.Builder
	roles.WriteString("- rolearn: arn:aws:iam::" + benchAccount + ":role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n")
	users := "- userarn: arn:aws:iam::" + benchAccount + ":user/alice\n  username: alice\n  groups:\n    - system:masters\n"
	count := 1
	for i := 1; n == benchMax || count < n; i++ {
		var b strings.Builder
		benchEntry(&b, i)
		if n == benchMax && roles.Len()+b.Len()+len(users)+len(KeyMapRoles)+len(KeyMapUsers)+1024 > MaxConfigMapBytes {
			break
		}
		roles.WriteString(b.String())
		count++
	}
	return map[string]string{KeyMapRoles: roles.String(), KeyMapUsers: users}, count
}

// benchEdit is what a user does: add one team, written as a permission set
// for the webhook to resolve. seq makes every edit different.
func benchEdit(data map[string]string, seq int) map[string]string {
	out := map[string]string{}
	for k, v := range data {
		out[k] = v
	}
	out[KeyMapRoles] += fmt.Sprintf("- permissionset: %s\n  username: new%d:{{SessionName}}\n  groups:\n    - new-team-%d\n", benchPermissionSet(9000+seq%900), seq, seq)
	return out
}

// benchResolver knows every TeamNNNN permission set.
type benchResolver struct{}

func (benchResolver) Account(context.Context) (Account, error) {
	return Account{Partition: "aws", ID: benchAccount}, nil
}

func (benchResolver) PermissionSetRoles(_ context.Context, names []string) (PermissionSetLookup, error) {
	out := PermissionSetLookup{ARNs: map[string]string{}}
	for _, n := range names {
		var i int
		if _, err := fmt.Sscanf(n, "Team%04d", &i); err == nil {
			out.ARNs[n] = benchRoleARN(i)
		}
	}
	for n := range out.ARNs {
		out.Existing = append(out.Existing, n)
	}
	sort.Strings(out.Existing)
	return out, nil
}

func benchName(n, count int) string {
	if n == benchMax {
		return fmt.Sprintf("entries=%d(1MiB)", count)
	}
	return fmt.Sprintf("entries=%d", count)
}

// BenchmarkRender is the mutating webhook's engine work: parse the edited
// document, resolve the new permission set, splice in its rolearn, and
// validate the result.
func BenchmarkRender(b *testing.B) {
	ctx := context.Background()
	opts := Options{NodeRoleARNs: []string{"arn:aws:iam::" + benchAccount + ":role/eks-node"}}
	for _, n := range benchSizes {
		data, count := benchDocument(n)
		b.Run(benchName(n, count), func(b *testing.B) {
			edits := make([]map[string]string, 64)
			for i := range edits {
				edits[i] = benchEdit(data, i)
			}
			// The edit is valid and changes exactly mapRoles.
			res, err := Render(ctx, edits[0], benchResolver{}, opts)
			if err != nil || res.Findings.HasErrors() || len(res.Changed) != 1 {
				b.Fatalf("render: err=%v findings=%v changed=%v", err, res.Findings.Errors().Strings(), res.Changed)
			}
			b.SetBytes(int64(len(edits[0][KeyMapRoles])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Render(ctx, edits[i%len(edits)], benchResolver{}, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		// As the webhook runs it: the stored document's items were read
		// before, and each edit is new (one item read as written, one as
		// resolved).
		b.Run(benchName(n, count)+"/cached", func(b *testing.B) {
			cache := newMapCache()
			cached := opts
			cached.Cache = cache
			if _, err := Render(ctx, data, benchResolver{}, cached); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data[KeyMapRoles])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Render(ctx, benchEdit(data, i), benchResolver{}, cached); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRenderResolved is the validating webhook's engine work: the
// object arrives already resolved, so Render parses and validates and
// changes nothing.
func BenchmarkRenderResolved(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes {
		data, count := benchDocument(n)
		b.Run(benchName(n, count), func(b *testing.B) {
			res, err := Render(ctx, data, benchResolver{}, Options{})
			if err != nil || res.Findings.HasErrors() || len(res.Changed) != 0 {
				b.Fatalf("render: err=%v findings=%v changed=%v", err, res.Findings.Errors().Strings(), res.Changed)
			}
			b.SetBytes(int64(len(data[KeyMapRoles])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Render(ctx, data, benchResolver{}, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLint is parse and validate alone (the CLI's lint, and the
// lockout guard's reading of the old object).
func BenchmarkLint(b *testing.B) {
	for _, n := range benchSizes {
		data, count := benchDocument(n)
		b.Run(benchName(n, count), func(b *testing.B) {
			if res := Lint(data); res.Findings.HasErrors() {
				b.Fatalf("lint: %v", res.Findings.Errors().Strings())
			}
			b.SetBytes(int64(len(data[KeyMapRoles])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Lint(data)
			}
		})
	}
}
