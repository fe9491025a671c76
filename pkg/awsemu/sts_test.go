package awsemu

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestGetCallerIdentity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg                 Config
		wantARN, wantRegion string
	}{
		{Config{}, "arn:aws:sts::111122223333:assumed-role/aws-auth-webhook/emulated", "us-east-1"},
		{Config{Partition: "aws-cn", AccountID: "210987654321"}, "arn:aws-cn:sts::210987654321:assumed-role/aws-auth-webhook/emulated", "cn-north-1"},
		{Config{CallerARN: "arn:aws:sts::111122223333:assumed-role/Admin/jane@example.com"}, "arn:aws:sts::111122223333:assumed-role/Admin/jane@example.com", "us-east-1"},
	}
	for _, tc := range cases {
		t.Run(tc.wantARN, func(t *testing.T) {
			t.Parallel()
			s, cfg := startEmulator(t, tc.cfg)
			out, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatal(err)
			}
			wantAccount := tc.cfg.AccountID
			if wantAccount == "" {
				wantAccount = "111122223333"
			}
			if *out.Arn != tc.wantARN || *out.Account != wantAccount || *out.UserId == "" {
				t.Errorf("GetCallerIdentity = Arn %s Account %s UserId %s", *out.Arn, *out.Account, *out.UserId)
			}
			if cfg.Region != tc.wantRegion {
				t.Errorf("region %s, want %s", cfg.Region, tc.wantRegion)
			}
			wantCalls(t, s, "sts:GetCallerIdentity", 1)
		})
	}
}
