# ktune: the CLI and `ktune controller` (deploy/ runs the latter).
#
#   docker build -t ghcr.io/ktune-dev/ktune:latest .
#
# Build stage: the workspace's own manifests first, so the dependency layer
# is cached across source edits.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY algorithms algorithms
COPY examples examples
COPY fake-apiserver fake-apiserver
COPY benches benches
COPY migrations migrations
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ktune \
    && cp target/release/ktune /usr/local/bin/ktune

# Run stage: glibc and libgcc only (TLS is rustls, SQLite is bundled), no
# shell, non-root (uid 65532, as deploy/deployment.yaml expects).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/ktune /usr/local/bin/ktune
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ktune"]
CMD ["controller", "--listen=0.0.0.0:8080"]
