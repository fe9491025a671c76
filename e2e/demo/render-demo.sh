#!/usr/bin/env bash
# The offline demo: render e2e/demo/aws-auth.yaml against the local AWS
# emulator (IAM, STS and IMDS wire protocols), so no AWS account is needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN:-bin}
work=$(mktemp -d)
emu_pid=
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# An account with three SSO permission sets and a node role on the "instance".
"$bin/aws-emulator" --account 111122223333 --region eu-west-1 \
	--permission-set Admin --permission-set ReadOnly --permission-set Admin_ReadOnly \
	--node-role eks-node-group-a >"$work/env" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 50); do grep -q AWS_ENDPOINT_URL_IAM "$work/env" 2>/dev/null && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/env"

echo "== aws-auth as written (e2e/demo/aws-auth.yaml):"
sed -n '/^data:/,$p' e2e/demo/aws-auth.yaml
echo
echo "== aws-auth-webhook render -f e2e/demo/aws-auth.yaml   (warnings on stderr)"
"$bin/aws-auth-webhook" render -f e2e/demo/aws-auth.yaml >"$work/rendered.yaml" 2>"$work/render.err"
cat "$work/render.err"
echo
echo "== what render changed (diff):"
diff -u e2e/demo/aws-auth.yaml "$work/rendered.yaml" | tail -n +3 || true
echo
echo "== lint, with no AWS call, catches what the authenticator would silently get wrong"
echo "   (aws-auth-webhook lint -f e2e/demo/broken-aws-auth.yaml):"
"$bin/aws-auth-webhook" lint -f e2e/demo/broken-aws-auth.yaml || echo "(lint exit status $?)"
