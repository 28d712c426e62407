# The README's commands. `make test` is what CI runs (.ci/run).
GO ?= go
PKGS := ./...

.PHONY: demo test fmt vet lint test-race bench benchmark build

# Start Surge on its embedded default (Pebble in ./surge-data) with the demo catalog.
demo:
	$(GO) run ./cmd/surge serve --demo

# The version and commit from git, for builds that record no vcs.revision
# (-buildvcs=false); `surge version` and surge_build_info show them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDINFO := github.com/surge-retail/surge/internal/buildinfo

build:
	$(GO) build -ldflags "-X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT)" -o bin/surge ./cmd/surge

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint: fmt vet

# The whole suite, race detector on (laws are checked under -race), then
# the zero-allocation tests, which only mean something without -race (the
# race detector allocates).
test: lint
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(GO) test -count=1 -run 'Alloc|NoAlloc|DoesNotAllocate' ./inventory/ ./engine/ ./gateway/

test-race: test

# Go benchmarks of every package, each next to its floor where it has one.
benchmark:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

# BENCHMARKS.md, generated from one run: the in-process scenarios, the
# package benchmarks and the external wrk measurement (README, "Rehearsing
# sale day, and measuring"). About 10 minutes; needs redis-server and wrk.
bench: build
	bin/surge bench --packages --wrk --out BENCHMARKS.md
