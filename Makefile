# PipeCore build, run and test entry points. See README.md.
#
#   make run    build everything and run the gateway on its embedded default
#   make test   install test tools, build the binaries, run every test (-race)
#
# Tools are installed on demand at pinned versions.

SHELL        := /bin/bash
GO           ?= go
BIN          ?= $(CURDIR)/bin
GOBIN        := $(shell $(GO) env GOPATH)/bin
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
MODULES      := sdk core e2e $(wildcard plugins/*) examples/manual
PLUGINS      := $(notdir $(wildcard plugins/*))

STRIPE_MOCK_VERSION      := v0.203.0
STATICCHECK_VERSION      := v0.8.2
PROTOC_GEN_GO_VERSION    := v1.36.6
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

STRIPE_MOCK  := $(GOBIN)/stripe-mock
STATICCHECK  := $(GOBIN)/staticcheck

export PATH := $(GOBIN):$(PATH)

.PHONY: all build core plugins checksums run test unit e2e lint vet fmt-check bench proto clean tools

all: build

## build: the gateway, every plugin and bin/plugins/SHA256SUMS
build: core plugins checksums

core:
	@mkdir -p $(BIN)
	cd core && $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/pipecore ./cmd/pipecore

plugins:
	@mkdir -p $(BIN)/plugins
	@for p in $(PLUGINS); do \
		echo "build plugin $$p"; \
		(cd plugins/$$p && $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/plugins/pipecore-plugin-$$p .) || exit 1; \
	done

checksums:
	cd $(BIN)/plugins && sha256sum pipecore-plugin-* > SHA256SUMS

## run: build and start the gateway with the demo config (prints the demo API key)
run: build $(STRIPE_MOCK)
	BIN=$(BIN) STRIPE_MOCK=$(STRIPE_MOCK) ./scripts/run-demo.sh

## test: every test of every module, with the race detector
test: $(STRIPE_MOCK) build fmt-check vet
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && PIPECORE_BIN=$(BIN) STRIPE_MOCK=$(STRIPE_MOCK) $(GO) test -race -count=1 -timeout 20m ./...); \
	done

## lint: gofmt, go vet and staticcheck over every module
lint: fmt-check vet $(STATICCHECK)
	@set -e; for m in $(MODULES); do (cd $$m && $(STATICCHECK) ./...); done

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: hot-path benchmarks, then e2e/cmd/ingressbench (gateway ingress vs a bare baseline, end-to-end latency)
bench: build
	@set -e; for m in sdk core; do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem ./...); done
	cd e2e && $(GO) run ./cmd/ingressbench -bin $(BIN)

## proto: regenerate sdk/internal/providerpb from sdk/proto (pinned generators)
proto: tools
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	cd sdk && protoc -I proto \
		--go_out=internal/providerpb --go_opt=paths=source_relative \
		--go-grpc_out=internal/providerpb --go-grpc_opt=paths=source_relative \
		pipecore/provider/v1/provider.proto
	mv sdk/internal/providerpb/pipecore/provider/v1/*.go sdk/internal/providerpb/
	rm -rf sdk/internal/providerpb/pipecore

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

$(STRIPE_MOCK):
	$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf $(BIN) data
