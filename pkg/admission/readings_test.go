package admission

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/aws-auth-webhook/aws-auth-webhook/pkg/awsauth"
)

// itemReading reads one item through the engine, as the handlers do.
func itemReading(t *testing.T, text string) *awsauth.ItemReading {
	t.Helper()
	var got *awsauth.ItemReading
	capture := captureCache{add: func(_ string, r *awsauth.ItemReading) { got = r }}
	awsauth.LintWithOptions(map[string]string{awsauth.KeyMapRoles: text}, awsauth.Options{Cache: capture})
	if got == nil {
		t.Fatalf("%q was not read item by item", text)
	}
	return got
}

type captureCache struct {
	add func(string, *awsauth.ItemReading)
}

func (captureCache) Get(string) (*awsauth.ItemReading, bool)   { return nil, false }
func (c captureCache) Add(text string, r *awsauth.ItemReading) { c.add(text, r) }

// TestReadingsBoundedInBytes: the readings kept never add up to more than
// the bound, the least recently used go first, and an item bigger than an
// eighth of the bound is not kept at all.
func TestReadingsBoundedInBytes(t *testing.T) {
	text := func(i int) string {
		return fmt.Sprintf("- rolearn: arn:aws:iam::111122223333:role/team-%04d\n  username: team-%04d\n", i, i)
	}
	one := itemReading(t, text(0))
	size := len(text(0)) + one.Size()
	c := newReadings(10 * size)
	for i := range 30 {
		c.Add(text(i), itemReading(t, text(i)))
		if i == 20 {
			c.Get(text(15)) // used recently: kept
		}
		if st := c.Stats(); st.Bytes > 10*size {
			t.Fatalf("after %d items: %d bytes kept, bound %d", i+1, st.Bytes, 10*size)
		}
	}
	if st := c.Stats(); st.Items < 9 || st.Items > 10 {
		t.Fatalf("%d items kept; want the 9 or 10 that fit", st.Items)
	}
	if _, ok := c.Get(text(29)); !ok {
		t.Fatal("the newest item was forgotten")
	}
	if _, ok := c.Get(text(0)); ok {
		t.Fatal("the oldest item was kept")
	}
	if _, ok := c.Get(text(15)); !ok {
		t.Fatal("an item used recently was forgotten")
	}
	big := "- rolearn: arn:aws:iam::111122223333:role/big\n  username: " + strings.Repeat("x", 2*size) + "\n"
	c.Add(big, itemReading(t, big))
	if _, ok := c.Get(big); ok {
		t.Fatal("an item over an eighth of the bound was kept")
	}
}

// TestForgetDropsWhatABurstKept: after Forget the handlers hold no item
// reading and no stored object, and the next edit is answered as before.
func TestForgetDropsWhatABurstKept(t *testing.T) {
	f := newFixture(t)
	old := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles})
	obj := configMap("kube-system", "aws-auth", map[string]string{"mapRoles": baseRoles + "- permissionset: ReadOnly\n  username: ro\n  groups: [viewers]\n"})
	edit := func() admission.Response {
		resp := f.h.Mutator().Handle(context.Background(), review(admissionv1.Update, obj, old, asUser("admin", adminARN)))
		if !resp.Allowed || len(resp.Patches) != 1 {
			t.Fatalf("allowed=%v patches=%v result=%v", resp.Allowed, resp.Patches, resp.Result)
		}
		return resp
	}
	first := edit()
	if st := f.h.ReadingStats(); st.Items == 0 || f.h.stored.lru.Len() == 0 {
		t.Fatalf("an admission kept nothing (%+v, %d stored objects)", st, f.h.stored.lru.Len())
	}
	f.h.Forget()
	if st := f.h.ReadingStats(); st.Items != 0 || st.Bytes != 0 || f.h.stored.lru.Len() != 0 {
		t.Fatalf("kept after Forget: %+v, %d stored objects", st, f.h.stored.lru.Len())
	}
	if again := edit(); !reflect.DeepEqual(again.Patches, first.Patches) {
		t.Fatalf("the edit after Forget is answered differently: %v, was %v", again.Patches, first.Patches)
	}
}
