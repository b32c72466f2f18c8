# The kaito-rs image: one `kaito` binary that is the operator (`kaito operator`), the tuning
# Job's entrypoint (`kaito tune --in-cluster`) and the inference server (`kaito serve`).
#
#   docker build -t ghcr.io/kaito-rs/kaito:0.1.0 .
#   docker build --build-arg FEATURES=cuda --build-arg BASE=nvidia/cuda:12.6.3-runtime-ubuntu24.04 -t ...-cuda .
ARG BASE=gcr.io/distroless/cc-debian12:nonroot

FROM rust:1.95-bookworm AS build
ARG FEATURES=cpu
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kaito-operator --bin kaito --no-default-features --features "${FEATURES}" \
    && cp target/release/kaito /kaito

FROM ${BASE}
COPY --from=build /kaito /usr/local/bin/kaito
# Model weights, datasets and adapters go to mounted volumes; nothing is written to the image.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kaito"]
CMD ["--help"]
