package admission

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestStoredObjectsDecodeAndLoadOncePerBytes(t *testing.T) {
	raw := func(roles string) []byte {
		b, _ := json.Marshal(&corev1.ConfigMap{Data: map[string]string{"mapRoles": roles}})
		return b
	}
	a := raw("- rolearn: arn:aws:iam::111122223333:role/a\n  username: a\n")
	b := raw("- rolearn: arn:aws:iam::111122223333:role/b\n  username: b\n")
	c := newStoredObjects()
	first, err := c.decode(a)
	if err != nil || first == nil || first.cm.Data["mapRoles"] == "" {
		t.Fatalf("decode: %+v %v", first, err)
	}
	again, _ := c.decode(append([]byte(nil), a...)) // the same bytes, another slice
	if again != first {
		t.Error("the same oldObject bytes were decoded again")
	}
	other, _ := c.decode(b)
	if other == first || other.cm.Data["mapRoles"] == first.cm.Data["mapRoles"] {
		t.Error("different bytes gave the remembered object")
	}
	if l1, l2 := first.load(nil), first.load(nil); l1 != l2 || len(l1.Roles) != 1 || l1.Roles[0].ARN != "arn:aws:iam::111122223333:role/a" {
		t.Errorf("load: %+v, %+v", l1, l2)
	}
	if first.matcher == nil {
		t.Error("no matcher kept with the load")
	}
	if _, err := c.decode([]byte(`{"kind":"Secret","apiVersion":"v1"}`)); err == nil {
		t.Error("a Secret decoded as an oldObject")
	}
	if o, err := c.decode(nil); o != nil || err != nil {
		t.Errorf("no oldObject: %+v %v", o, err)
	}
}
