# syntax=docker/dockerfile:1
#
# jinn's image: one static binary on Debian slim. Every role runs from it:
#   docker run jinn nats | intake | scheduler | worker | up
#
# Build:  docker build --build-arg VERSION=$(git describe --tags --always) -t jinn .
#
# Why Debian slim and not distroless: a worker runs jobs, and jobs are commands
# (the default "bash" command runs `bash -c`); they need a shell, coreutils and
# CA certificates. Distroless static has no shell at all. tini is PID 1: it
# forwards SIGTERM to jinn alone (a worker drains; jobs in their own process
# groups keep running) and reaps orphans that a job leaves behind.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/jinn ./cmd/jinn

FROM debian:bookworm-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="jinn" \
      org.opencontainers.image.description="a job execution fleet on NATS JetStream" \
      org.opencontainers.image.version="${VERSION}"
# bash and coreutils are Essential in Debian (always present); they are named
# here because jobs depend on them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash coreutils ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 jinn \
 && useradd --system --uid 10001 --gid jinn --home-dir /var/lib/jinn --create-home --shell /bin/bash jinn
COPY --from=build /out/jinn /usr/local/bin/jinn
# In a container, listening on loopback only is never what is meant.
ENV JINN_DATA=/var/lib/jinn \
    JINN_LISTEN=0.0.0.0:8080 \
    JINN_NATS_LISTEN=0.0.0.0:4222 \
    JINN_NATS_CLUSTER_LISTEN=0.0.0.0:6222
WORKDIR /var/lib/jinn
# 8080 HTTP API (intake, up); 4222 NATS clients, 6222 NATS routes, 8222 NATS monitoring.
EXPOSE 8080 4222 6222 8222
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/jinn"]
CMD ["up", "--listen", "0.0.0.0:8080"]
