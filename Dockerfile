# syntax=docker/dockerfile:1
# Cellar: one image, three binaries (cellar-api, cellar-worker, cellar). Pick one with the
# container's command; docker-compose.yml runs the API and the workers from it.
#
#   docker build -t cellar .
#   docker run --rm cellar cellar key generate
#
# Stage 1 builds with the committed offline query data (.sqlx/, SQLX_OFFLINE=true in
# .cargo/config.toml): no database is needed at build time. --locked: exactly Cargo.lock.
FROM rust:1.94-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cellar-api -p cellar-worker -p cellar-cli --bins \
 && mkdir /out \
 && cp target/release/cellar-api target/release/cellar-worker target/release/cellar /out/

# Stage 2: a small runtime. postgresql-client comes from the PGDG repository, not Debian's
# (bookworm ships 15): pg_dump refuses servers of a newer major version than its own, so the
# client must be at least as new as the newest source server. Client 17 dumps and restores
# servers from 9.2 up to 17 (restores use the pg_restore beside CELLAR_PG_DUMP).
FROM debian:bookworm-slim AS runtime
ARG PG_MAJOR=17
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL https://www.postgresql.org/media/keys/ACCC4CF8.asc \
        | gpg --dearmor -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.gpg; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.gpg] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove gnupg; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --home-dir /var/lib/cellar --create-home cellar; \
    install -d -o cellar -g cellar /var/lib/cellar/backups
COPY --from=build /out/ /usr/local/bin/
# In-container defaults; everything else comes from the environment (.env.sample lists it).
ENV CELLAR_LISTEN=0.0.0.0:8080 \
    CELLAR_BACKUP_DIR=/var/lib/cellar/backups \
    CELLAR_PG_DUMP=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump \
    CELLAR_LOG_FORMAT=json
USER cellar
WORKDIR /var/lib/cellar
VOLUME ["/var/lib/cellar/backups"]
EXPOSE 8080
# The API's liveness probe (the workers' containers turn it off in docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${CELLAR_LISTEN##*:}/healthz" >/dev/null || exit 1
CMD ["cellar-api"]
