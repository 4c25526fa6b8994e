# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on Debian slim as
# an unprivileged user. (No Docker engine runs on this project's development
# machines, so this file is not built in CI.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Compile-time options for the bundled SQLite.
COPY .cargo ./.cargo
COPY src ./src
COPY build.rs ./
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin tasks-api

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home tasks
COPY --from=build /src/target/release/tasks-api /usr/local/bin/tasks-api
USER tasks
WORKDIR /data
ENV HOST=0.0.0.0 PORT=8000 LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000"]
ENTRYPOINT ["tasks-api"]
CMD ["serve"]
