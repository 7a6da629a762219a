# syntax=docker/dockerfile:1.7
# The onus image: a static binary on distroless/static (CA certificates, /etc/passwd with the
# nonroot user, tzdata; no shell, no package manager). The build stage runs hack/build-static,
# the same script that builds the binary without Docker.
#
#   docker build -t onus:dev .
#   docker run --rm onus:dev check --help
#
# Pin both base images by digest in your registry mirror (e.g. with Renovate) for reproducible
# builds; the chart's image.digest pins the result.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# musl-tools: a C compiler for aws-lc-rs's C code when targeting musl (bookworm's version).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    hack/build-static --out /out/onus

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="onus" \
      org.opencontainers.image.description="Enforces the customer's side of the cloud shared-responsibility model in Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/onus-dev/onus"
COPY --from=build --chown=0:0 --chmod=0555 /out/onus /onus
# nonroot (65532:65532) from distroless; the chart sets the same ids and runAsNonRoot.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/onus"]
CMD ["run"]
