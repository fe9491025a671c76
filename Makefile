# aws-auth-webhook — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN        := bin
BINARY     := $(BIN)/aws-auth-webhook
EMULATOR   := $(BIN)/aws-emulator
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The one place the binary's build flags live: make build, make image and
# the Dockerfile (which runs `make binary`) all build with GOBUILD, so the
# e2e runs what ships (e2e/tools/image/dockerfile_test.go checks they agree).
GOBUILD    := CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X github.com/aws-auth-webhook/aws-auth-webhook/cmd/aws-auth-webhook/app.version=$(VERSION)"
# make image: platforms, output, labels; BASE= a registry base pinned by
# digest (default: the offline base); PUSH= registry/repository[:tag].
PLATFORMS  ?= linux/amd64 linux/arm64
IMAGE_DIR  ?= $(BIN)/image
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE     ?= https://github.com/aws-auth-webhook/aws-auth-webhook
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
BASE       ?=
PUSH       ?=
OUT        ?= $(BINARY)
FUZZTIME   ?= 30s
DIFF_N     ?= 500000

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/aws-auth-webhook (and the dev AWS emulator bin/aws-emulator)
	$(GOBUILD) -o $(BINARY) ./cmd/aws-auth-webhook
	$(GOBUILD) -o $(EMULATOR) ./cmd/aws-emulator

.PHONY: binary
binary: ## One binary into OUT (default bin/aws-auth-webhook) for GOOS/GOARCH from the environment; the Dockerfile builds with it
	$(GOBUILD) -o $(OUT) ./cmd/aws-auth-webhook

.PHONY: image
image: ## OCI image layout bin/image: linux/amd64 + linux/arm64, SBOMs, no Docker (BASE=repo@sha256:... base, PUSH=repo[:tag] push)
	@for p in $(PLATFORMS); do \
	  echo "image: building the $$p binary"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GOBUILD) -o $(BIN)/platforms/$${p%/*}_$${p#*/}/aws-auth-webhook ./cmd/aws-auth-webhook; \
	done
	@echo "image: assembling $(IMAGE_DIR)"
	go run ./e2e/tools/image --out $(IMAGE_DIR) --version $(VERSION) --revision $(REVISION) --source $(SOURCE) \
	  --created $(SOURCE_DATE_EPOCH) $(foreach p,$(PLATFORMS),--binary $(p)=$(BIN)/platforms/$(subst /,_,$(p))/aws-auth-webhook) \
	  $(if $(BASE),--base $(BASE)) $(if $(PUSH),--push $(PUSH))

.PHONY: demo
demo: build ## Run it locally: etcd + kube-apiserver + AWS emulator + the webhook; try kubectl edit (Ctrl-C stops)
	@echo "== control plane: built once into the tools cache (the first time: kube-apiserver, kubectl, etcd, several minutes; progress below)"
	KUBEBUILDER_ASSETS=$$(e2e/tools/install.sh all) go run -tags e2e ./e2e/demo --bin $(BIN)

.PHONY: demo-render
demo-render: build ## The offline CLI demo: render an example aws-auth against the AWS emulator
	e2e/demo/render-demo.sh

.PHONY: lint
lint: ## golangci-lint (.golangci.yml: vet, staticcheck, errcheck, ..., gofmt/goimports; e2e code too), helm lint, manifests/ up to date
	@echo "== golangci-lint $$(sed -n 's/^GOLANGCI_LINT_VERSION=\([^ ]*\).*/\1/p' e2e/tools/install.sh) (the first run builds it into the tools cache, ~2 min on 2 cores)"
	golangci=$$(e2e/tools/install.sh golangci-lint)/golangci-lint; $$golangci run ./...
	helm=$$(e2e/tools/install.sh helm)/helm; $$helm lint --strict charts/aws-auth-webhook
	@$(MAKE) --no-print-directory manifests MANIFESTS_OUT=$(BIN)/manifests-check.yaml
	@diff -u manifests/aws-auth-webhook.yaml $(BIN)/manifests-check.yaml || { echo "manifests/ is out of date with the chart: run make manifests"; exit 1; }

MANIFESTS_OUT ?= manifests/aws-auth-webhook.yaml
.PHONY: manifests
manifests: ## Render manifests/aws-auth-webhook.yaml (plain YAML install) from the chart
	@mkdir -p $(dir $(MANIFESTS_OUT))
	helm=$$(e2e/tools/install.sh helm)/helm; { \
	  echo "# aws-auth-webhook, plain-YAML install. Generated from charts/aws-auth-webhook by 'make manifests'; do not edit."; \
	  echo "# Needs cert-manager. Set --node-role-arn in the Deployment's args (one per node group), then:"; \
	  echo "#   kubectl apply -f manifests/aws-auth-webhook.yaml"; \
	  echo "apiVersion: v1"; echo "kind: Namespace"; echo "metadata:"; echo "  name: aws-auth-webhook"; \
	  $$helm template aws-auth-webhook charts/aws-auth-webhook --namespace aws-auth-webhook; \
	} > $(MANIFESTS_OUT)

.PHONY: unit
unit: ## Unit and integration tests (no control plane); prints the differential figures against the authenticator
	go test -race -count=1 ./...
	@go test -count=1 -v -run '^(TestAuthenticatorAgrees|TestManifestsAgree)$$' ./pkg/awsauth/ | grep -E 'differential' 

.PHONY: tools
tools: ## Build (or reuse) kube-apiserver, etcd, kubectl, helm and cert-manager, and fetch the Prometheus Operator CRDs, cached outside the work tree
	e2e/tools/install.sh install >/dev/null

.PHONY: e2e
e2e: build image ## End-to-end tests against a real kube-apiserver + etcd (builds them once); the Helm install runs the image
	command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
	@echo "== control plane, helm, cert-manager: built once into the tools cache (the first time takes minutes; progress below)"
	e2e/tools/install.sh install >/dev/null
	assets=$$(e2e/tools/install.sh all); \
	KUBEBUILDER_ASSETS=$$assets AWS_AUTH_WEBHOOK_BIN=$(abspath $(BIN)) AWS_AUTH_WEBHOOK_IMAGE=$(abspath $(IMAGE_DIR)) go test -tags e2e -count=1 -timeout 30m -v ./e2e/... 2>&1 | tee $(BIN)/e2e.log; \
	status=$${PIPESTATUS[0]}; [ $$status -eq 0 ] || exit $$status; \
	echo "== make demo, checked: start it, kubectl edit a permissionset, stop"; \
	KUBEBUILDER_ASSETS=$$assets go run -tags e2e ./e2e/demo --bin $(BIN) --check

.PHONY: test
test: lint unit e2e ## Everything CI runs: lint, unit tests, e2e

.PHONY: fuzz
fuzz: ## Fuzz the engine for FUZZTIME each (default 30s), then the long differential runs against the authenticator, documents and manifests (DIFF_N each)
	go test ./pkg/awsauth/ -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME)
	go test ./pkg/awsauth/ -run '^$$' -fuzz '^FuzzAuthenticatorAgrees$$' -fuzztime $(FUZZTIME)
	AWS_AUTH_WEBHOOK_DIFF_N=$(DIFF_N) go test ./pkg/awsauth/ -run '^(TestAuthenticatorAgrees|TestManifestsAgree)$$' -count=1 -v -timeout 90m | grep -E 'differential|^(--- |ok|FAIL)'

.PHONY: bench
bench: build ## Benchmarks: engine, TLS load vs a no-op webhook baseline, AWS call budget, footprint (prints the tables)
	KUBEBUILDER_ASSETS=$$(e2e/tools/install.sh all) go run ./e2e/bench --bin $(BINARY) -o $(BIN)/bench.md

.PHONY: chart-docs
chart-docs: ## Regenerate the chart README's values table from values.yaml
	UPDATE_CHART_README=1 go test ./charts/ -run TestChartREADMEDocumentsEveryValue -count=1

.PHONY: clean
clean: ## Remove build output (the control-plane cache stays)
	rm -rf $(BIN)
