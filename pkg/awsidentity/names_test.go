package awsidentity

import "testing"

func TestBetter(t *testing.T) {
	// Deterministic whichever order the two arrive in.
	older := candidate{roleName: "AWSReservedSSO_A_1", created: mustTime("2024-01-01T00:00:00Z")}
	newer := candidate{roleName: "AWSReservedSSO_A_0", created: mustTime("2024-06-01T00:00:00Z")}
	if !better(newer, older) || better(older, newer) {
		t.Error("the newest role must win")
	}
	a := candidate{roleName: "AWSReservedSSO_A_0", created: older.created}
	b := candidate{roleName: "AWSReservedSSO_A_1", created: older.created}
	if !better(a, b) || better(b, a) {
		t.Error("on equal CreateDate the smallest role name must win")
	}
}
