# syntax=docker/dockerfile:1
#
# Safe Chat Backend: production image.
#
#   docker build -t safechat-backend .
#   docker run --rm -p 3000:3000 -e JWT_SECRET="$(openssl rand -base64 48)" safechat-backend
#
# No compile step: `npm start` runs the TypeScript sources with tsx, so `tsx` is a production
# dependency, and the workspace package @safechat/protocol is imported from its sources
# (packages/protocol/src). The build stage only installs production dependencies (compiling
# better-sqlite3's native addon when no prebuilt binary can be fetched); the runtime stage copies
# them next to the sources and runs as an unprivileged user.
#
# Pin the base image by digest in production (node:20-bookworm-slim@sha256:…) for reproducible builds.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# better-sqlite3 builds from source with node-gyp when its prebuilt binary cannot be downloaded.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# Manifests first, so the dependency layer is reused when only sources change. npm ci needs the
# manifest of every workspace named in package.json, or the lockfile does not match.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/sdk/package.json packages/sdk/
# Production dependencies only (tsx included). Nothing is compiled, so dev dependencies
# (TypeScript, ESLint, Vitest) never enter the image. A source build of better-sqlite3 leaves
# ~25 MB of sources and object files beside its addon: dropped. Then prove the two native pieces
# load: better-sqlite3's addon and tsx's esbuild binary (an optional, per-platform dependency).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev \
 && cd node_modules/better-sqlite3 \
 && rm -rf deps src build/deps build/Release/obj build/Release/obj.target build/Release/.deps \
           build/Release/sqlite3.a build/Release/test_extension.node \
 && cd /app \
 && node -e "require('better-sqlite3')(':memory:').close()" \
 && echo 'const ok: string = "tsx ok"; console.log(ok);' > /tmp/check.ts \
 && node --import tsx /tmp/check.ts \
 && rm /tmp/check.ts

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/var/lib/safechat

# uid/gid 10001: unprivileged and unlikely to collide with a host account on bind mounts.
# DATA_DIR holds the SQLite database when DATABASE_URL is not set (one instance only); with
# PostgreSQL nothing is written there.
RUN groupadd --gid 10001 safechat \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/safechat --no-create-home \
      --shell /usr/sbin/nologin safechat \
 && mkdir -p /var/lib/safechat \
 && chown 10001:10001 /var/lib/safechat \
 && chmod 0700 /var/lib/safechat

WORKDIR /app
# Everything below stays owned by root and read-only for the service user.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/protocol/src packages/protocol/src
COPY packages/sdk/package.json packages/sdk/
COPY packages/sdk/src packages/sdk/src
COPY src ./src
# The web client (served at /app when SERVE_APP=on; bundled in memory at start).
COPY web/src ./web/src
COPY web/public ./web/public

USER 10001:10001
VOLUME ["/var/lib/safechat"]
EXPOSE 3000
# The server drains on SIGTERM: stops accepting, closes WebSockets with 1012 (clients resume on
# another instance), finishes requests in flight, closes the pools, exits 0. Give it at least
# SHUTDOWN_GRACE + 5 s before a SIGKILL (docker stop -t / stop_grace_period / terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# Liveness through node itself (the slim image has no curl or wget). /health/live answers once
# the server listens, i.e. after migrations ran; /health also checks the database and Redis and
# is the readiness probe for a load balancer or an orchestrator.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form and node as the process itself (not npm, not a shell), so SIGTERM reaches the server.
CMD ["node", "--max-semi-space-size=32", "--no-allocation-site-pretenuring", "--import", "tsx", "src/main.ts"]
