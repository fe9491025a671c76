#!/usr/bin/env bash
# Build the control-plane binaries the e2e tests run, once, into a cache folder
# outside the work tree, keyed by version.
#
#   e2e/tools/install.sh [kube|etcd|helm|cert-manager|all|install]  (default: all)
#
# Prints, as the last line on stdout, the absolute path of what was asked for:
#   all           the envtest assets folder (kube-apiserver, etcd, kubectl),
#                 ready for KUBEBUILDER_ASSETS
#   install       kube + etcd + helm + cert-manager (what the Helm install e2e
#                 needs): the cache root; the folders below are inside it
#   kube          the k8s-<version> folder
#   etcd          the etcd-<version> folder
#   helm          the helm-<version> folder (helm)
#   golangci-lint the golangci-lint-<version> folder (golangci-lint, which
#                 make lint runs with the repository's .golangci.yml)
#   cert-manager  the cert-manager-<version> folder: cert-manager-controller,
#                 cert-manager-cainjector (thin mains, e2e/tools/certmanager)
#                 and crds/*.yaml (apply with kubectl apply --server-side: the
#                 Issuer CRDs are too big for client-side apply)
#   prometheus-operator  the prometheus-operator-<version> folder: crds/*.yaml,
#                 the monitoring.coreos.com CRDs (apply --server-side too)
# Everything else (build chatter) goes to stderr.
#
# Cache root: $AWS_AUTH_WEBHOOK_CACHE, default ~/.cache/aws-auth-webhook.
# A binary that already exists is never rebuilt (a warm run takes well under a
# second); delete its folder to force a rebuild. Builds go to a temporary name
# and are renamed into place, so an interrupted build leaves no half binary.
#
# Each binary comes from a small tools module next to this script
# (e2e/tools/<name>/go.mod), whose go.mod pins the same version as below;
# helm needs none (go install helm.sh/helm/v3/cmd/helm@version works as is).
#
# Memory: linking kube-apiserver peaks at ~2.6 GB RSS (measured, -p=2, 2 cores);
# the cold build of kube + etcd takes ~9-10 min there; helm adds ~1.5 min,
# cert-manager ~2.5 min (its controller links at ~1.1 GB). Binaries are built
# one at a time; AWS_AUTH_WEBHOOK_BUILD_P sets go build -p (default 2). While
# a binary builds, a line every 30 s says so, so a long build is never silent.
set -euo pipefail

# ---- versions: the one place to change them ---------------------------------
K8S_VERSION=v1.37.1   # k8s.io/kubernetes; e2e/tools/kube/pin.sh rewrites its go.mod
ETCD_VERSION=v3.7.0   # go.etcd.io/etcd/server/v3
HELM_VERSION=v3.22.0  # helm.sh/helm/v3, go install'ed (no tools module)
CERT_MANAGER_VERSION=v1.21.2 # github.com/cert-manager/cert-manager; e2e/tools/certmanager
# github.com/prometheus-operator/prometheus-operator: its CRDs (ServiceMonitor,
# PrometheusRule, ...) from the module source; v0.85.0 is the newest root-module
# version the proxy serves. The go.sum hash of that zip, checked on download:
PROMETHEUS_OPERATOR_VERSION=v0.85.0
PROMETHEUS_OPERATOR_SUM=h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=
GOLANGCI_LINT_VERSION=v2.15.0 # github.com/golangci/golangci-lint/v2, go install'ed (make lint)
# ------------------------------------------------------------------------------

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
BUILD_P=${AWS_AUTH_WEBHOOK_BUILD_P:-2}

# stdout carries only the final path; send everything else to stderr.
exec 3>&1 1>&2

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_root() {
	local root=${AWS_AUTH_WEBHOOK_CACHE:-$HOME/.cache/aws-auth-webhook}
	mkdir -p "$root"
	root=$(cd "$root" && pwd -P)
	local repo
	repo=$(cd "$TOOLS_DIR/../.." && pwd -P)
	case "$root/" in
	"$repo"/*) log "warning: cache $root is inside the work tree $repo; keep binaries out of git" ;;
	esac
	printf '%s\n' "$root"
}
CACHE=$(cache_root)

LOCKED= # set once this run holds the cache lock

# Temp files (and folders) of builds in flight; removed on any exit.
TMP_FILES=()
TICKER= # the progress printer of the build in flight
cleanup() {
	[[ -z $TICKER ]] || kill "$TICKER" 2>/dev/null || true
	((${#TMP_FILES[@]} == 0)) || rm -rf "${TMP_FILES[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# require_pin MODULE_DIR MODULE_PATH VERSION: fail when the tools module's
# go.mod pins another version than this script (two places, one truth).
require_pin() {
	local gomod="$TOOLS_DIR/$1/go.mod"
	[[ -f $gomod ]] || die "missing $gomod"
	grep -Eq "^(require)?[[:space:]]*$2 $3([[:space:]]|$)" "$gomod" ||
		die "$gomod does not require $2 $3; install.sh and the tools module disagree"
}

# with_progress NAME CMD...: runs CMD, and while it runs says every 30 s
# that NAME is still building, so that a cold build (minutes) prints
# progress.
with_progress() {
	local name=$1 start=$SECONDS
	shift
	(while sleep 30; do log "still building $name ($((SECONDS - start))s so far)"; done) &
	TICKER=$!
	local rc=0
	"$@" || rc=$?
	kill "$TICKER" 2>/dev/null || true
	wait "$TICKER" 2>/dev/null || true
	TICKER=
	return "$rc"
}

# build_bin MODULE_DIR OUT_DIR NAME PACKAGE [LDFLAGS...]
# Builds PACKAGE from the tools module into $CACHE/OUT_DIR/NAME unless it exists.
build_bin() {
	local mod=$1 out="$CACHE/$2" name=$3 pkg=$4
	shift 4
	local dest="$out/$name"
	if [[ -x $dest ]]; then
		log "have $dest"
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH; it is needed to build $name"
	mkdir -p "$out"
	# Leftovers of a killed build; only safe while we hold the lock.
	[[ -z $LOCKED ]] || rm -f "$out/.$name.tmp."*
	local tmp="$out/.$name.tmp.$$"
	TMP_FILES+=("$tmp")
	log "building $name ($pkg) -> $dest"
	local start=$SECONDS
	with_progress "$name" bash -c 'cd "$1" && shift && CGO_ENABLED=0 exec go build "$@"' _ \
		"$TOOLS_DIR/$mod" -p "$BUILD_P" -trimpath -ldflags "-s -w $*" -o "$tmp" "$pkg"
	mv -f "$tmp" "$dest"
	log "built $name in $((SECONDS - start))s"
}

# install_bin OUT_DIR NAME PACKAGE@VERSION [LDFLAGS...]
# Like build_bin for a module that builds with `go install pkg@version` (no
# tools module): GOBIN is a temporary folder, the binary is renamed into place.
install_bin() {
	local out="$CACHE/$1" name=$2 pkg=$3
	shift 3
	local dest="$out/$name"
	if [[ -x $dest ]]; then
		log "have $dest"
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH; it is needed to build $name"
	mkdir -p "$out"
	[[ -z $LOCKED ]] || rm -rf "$out/.$name.tmp."*
	local tmp="$out/.$name.tmp.$$"
	TMP_FILES+=("$tmp")
	log "building $name ($pkg) -> $dest"
	local start=$SECONDS
	with_progress "$name" bash -c 'cd / && GOWORK=off GOBIN=$1 CGO_ENABLED=0 exec go install -p "$2" -trimpath -ldflags "$3" "$4"' _ \
		"$tmp" "$BUILD_P" "-s -w $*" "$pkg"
	local built=${pkg%@*}
	mv -f "$tmp/${built##*/}" "$dest"
	rmdir "$tmp"
	log "built $name in $((SECONDS - start))s"
}

# go_mod_file MODULE@VERSION: path of that module's go.mod (fetched if needed),
# asked from outside any module so that no go.mod/go.sum is touched.
go_mod_file() {
	(cd / && GOWORK=off go mod download -json "$1") |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p'
}

# ---- targets: one function per target ----------------------------------------
# A target builds its binaries with build_bin (or install_bin for a plain
# `go install pkg@version`) and sets OUT to its folder.
# To add one: a version above, a tools module in e2e/tools/<name>/, a
# target_<name> function here, and its name in ALL or INSTALL.

ALL=(kube etcd)                          # all: the envtest assets
INSTALL=("${ALL[@]}" helm cert-manager prometheus-operator) # install: + the Helm install e2e

k8s_dir() { printf 'k8s-%s' "$K8S_VERSION"; }
etcd_dir() { printf 'etcd-%s' "$ETCD_VERSION"; }
helm_dir() { printf 'helm-%s' "$HELM_VERSION"; }
golangci_lint_dir() { printf 'golangci-lint-%s' "$GOLANGCI_LINT_VERSION"; }
cert_manager_dir() { printf 'cert-manager-%s' "$CERT_MANAGER_VERSION"; }
prometheus_operator_dir() { printf 'prometheus-operator-%s' "$PROMETHEUS_OPERATOR_VERSION"; }

target_kube() {
	require_pin kube k8s.io/kubernetes "$K8S_VERSION"
	local v=$K8S_VERSION ld=() pkg
	[[ $v =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "bad K8S_VERSION $v"
	# Without the stamp the server says v0.0.0-master (Helm kubeVersion checks fail).
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=("-X $pkg.gitVersion=$v" "-X $pkg.gitMajor=${BASH_REMATCH[1]}" "-X $pkg.gitMinor=${BASH_REMATCH[2]}")
	done
	local bin
	for bin in kube-apiserver kube-controller-manager kubectl; do
		build_bin kube "$(k8s_dir)" "$bin" "k8s.io/kubernetes/cmd/$bin" "${ld[@]}"
	done
	OUT="$CACHE/$(k8s_dir)"
}

target_etcd() {
	require_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
	build_bin etcd "$(etcd_dir)" etcd go.etcd.io/etcd/server/v3
	OUT="$CACHE/$(etcd_dir)"
}

target_helm() {
	local out="$CACHE/$(helm_dir)"
	if [[ ! -x $out/helm ]]; then
		# Stamp like helm's Makefile: the version (else `helm version` says
		# v3.22) and the Kubernetes version of its client-go for lint/template.
		local gomod k8s
		gomod=$(go_mod_file "helm.sh/helm/v3@$HELM_VERSION")
		[[ -f $gomod ]] || die "could not fetch go.mod of helm.sh/helm/v3@$HELM_VERSION"
		k8s=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
		[[ -n $k8s ]] || die "no k8s.io/client-go in $gomod"
		local ld=(-X helm.sh/helm/v3/internal/version.version="$HELM_VERSION"
			-X helm.sh/helm/v3/internal/version.gitTreeState=clean) pkg
		for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
			ld+=(-X "$pkg.k8sVersionMajor=1" -X "$pkg.k8sVersionMinor=$k8s")
		done
		install_bin "$(helm_dir)" helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "${ld[@]}"
	else
		log "have $out/helm"
	fi
	OUT=$out
}

# golangci-lint for make lint: `go install pkg@version` (its own go.mod);
# built with this machine's Go, so it understands the Go the project uses.
target_golangci_lint() {
	local ld=(-X main.version="${GOLANGCI_LINT_VERSION#v}")
	install_bin "$(golangci_lint_dir)" golangci-lint \
		"github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION" "${ld[@]}"
	OUT="$CACHE/$(golangci_lint_dir)"
}

# cert-manager's stock cmd/controller and cmd/cainjector are modules the proxy
# does not serve; e2e/tools/certmanager holds two thin mains on its public pkg/.
target_cert_manager() {
	require_pin certmanager github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION"
	local ld=(-X "github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION")
	local bin
	for bin in controller cainjector; do
		build_bin certmanager "$(cert_manager_dir)" "cert-manager-$bin" "./$bin" "${ld[@]}"
	done
	local out="$CACHE/$(cert_manager_dir)"
	if [[ ! -d $out/crds ]]; then
		# The CRDs as cert-manager ships them in its module (deploy/crds).
		local dir
		dir=$(cd "$TOOLS_DIR/certmanager" && go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
		[[ -d $dir/deploy/crds ]] || die "no deploy/crds in cert-manager module ($dir)"
		rm -rf "$out/.crds.tmp."*
		local tmp="$out/.crds.tmp.$$"
		TMP_FILES+=("$tmp")
		mkdir -p "$tmp"
		cp "$dir"/deploy/crds/*.yaml "$tmp/"
		chmod u+w "$tmp"/*.yaml
		mv -T "$tmp" "$out/crds"
		log "copied $(ls "$out/crds" | wc -l) CRDs to $out/crds"
	else
		log "have $out/crds"
	fi
	OUT=$out
}

# The Prometheus Operator's CRDs, from its module (example/prometheus-operator-crd),
# fetched through the Go module proxy (checked against the checksum database
# and the pinned hash above); nothing is built.
target_prometheus_operator() {
	local out="$CACHE/$(prometheus_operator_dir)"
	if [[ ! -d $out/crds ]]; then
		local mod="github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" json dir sum
		json=$(cd / && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$mod") || die "go mod download $mod failed"
		dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<<"$json")
		sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p' <<<"$json")
		[[ $sum == "$PROMETHEUS_OPERATOR_SUM" ]] || die "$mod has hash $sum, install.sh pins $PROMETHEUS_OPERATOR_SUM"
		[[ -d $dir/example/prometheus-operator-crd ]] || die "no example/prometheus-operator-crd in $mod ($dir)"
		mkdir -p "$out"
		rm -rf "$out/.crds.tmp."*
		local tmp="$out/.crds.tmp.$$"
		TMP_FILES+=("$tmp")
		mkdir -p "$tmp"
		cp "$dir"/example/prometheus-operator-crd/*.yaml "$tmp/"
		chmod u+w "$tmp"/*.yaml
		mv -T "$tmp" "$out/crds"
		log "copied $(ls "$out/crds" | wc -l) CRDs to $out/crds"
	else
		log "have $out/crds"
	fi
	OUT=$out
}

# The envtest assets folder: kube-apiserver, etcd, kubectl side by side.
assemble_assets() {
	local assets="$CACHE/assets-$(k8s_dir)-$(etcd_dir)"
	mkdir -p "$assets"
	local src
	for src in "$(k8s_dir)/kube-apiserver" "$(k8s_dir)/kubectl" "$(etcd_dir)/etcd"; do
		[[ -x $CACHE/$src ]] || die "missing $CACHE/$src"
		ln -sfn "../$src" "$assets/$(basename "$src")"
	done
	OUT=$assets
}

target_all() {
	local t
	for t in "${ALL[@]}"; do
		"target_${t//-/_}"
	done
	assemble_assets
}

# Everything the Helm install e2e runs; prints the cache root.
target_install() {
	local t
	for t in "${INSTALL[@]}"; do
		"target_${t//-/_}"
	done
	assemble_assets
	OUT=$CACHE
}

# ------------------------------------------------------------------------------

main() {
	local target=${1:-all}
	local usage="usage: install.sh [$(IFS='|'; echo "${INSTALL[*]}")|golangci-lint|all|install]"
	(($# <= 1)) || die "$usage"
	[[ $target =~ ^[a-z-]+$ ]] && declare -F "target_${target//-/_}" >/dev/null ||
		die "unknown target '$target'; $usage"
	# One install.sh at a time per cache: a second caller waits for the first
	# instead of building the same binaries beside it (twice the memory).
	if command -v flock >/dev/null; then
		exec 9>"$CACHE/.install.lock"
		flock -n 9 || { log "waiting for another install.sh to finish"; flock 9; }
		LOCKED=1
	fi
	OUT=
	"target_${target//-/_}"
	printf '%s\n' "$OUT" >&3
}

main "$@"
