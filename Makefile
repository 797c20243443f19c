# jinn: a job execution fleet on NATS JetStream.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run build test test-short lint fuzz bench clean

## run: start everything on this machine (jinn up) with the embedded defaults
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/jinn up

## build: build bin/jinn
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/jinn ./cmd/jinn

## test: every test, with the race detector
test:
	$(GO) test -race -count=1 -timeout 15m ./...

## test-short: the fast unit tests only
test-short:
	$(GO) test -short -count=1 ./...

## lint: formatting and vet
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## fuzz: run each fuzz target for a while (FUZZTIME, default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./job -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)
	$(GO) test ./job -run '^$$' -fuzz FuzzValidateName -fuzztime $(FUZZTIME)

## bench: the benchmark suite (jinn bench) into docs/performance.md and docs/performance/*.png
bench: build
	./bin/jinn bench --out docs/performance.md --plots docs/performance $(BENCHFLAGS)

clean:
	rm -rf bin
