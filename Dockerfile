# Product catalog service (cache-aside on Redis, SQLite storage).
#   docker build -t effect-redis-cache-aside .
#   docker compose up --build          (with Redis; see docker-compose.yml)

# Node 22 (maintenance LTS; 20 is at its end of life). Not 24 yet: with better-sqlite3 12, Node 24.19+ aborts the
# process when a statement is garbage-collected at the wrong moment (nodejs/node#65446; see .ci/node-lts). CI runs
# the suite on 22 as well as on the machine's Node.

# ---- build: compile TypeScript and the native SQLite driver, then drop dev dependencies
FROM node:22-bookworm-slim AS build
# better-sqlite3 builds from source when no prebuilt binary fits: it needs python3, make, g++.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Only what `npm run build` (tsconfig.build.json: src/ -> dist/) reads.
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: dist + production node_modules + package.json, as user node
FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    DB_PATH=/data/products.db \
    HTTP_PORT=3000
WORKDIR /app
# Application files stay owned by root (read-only for the app); only /data is writable.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 3000
# No curl in the slim image: Node's own fetch. /health answers 200 while SQLite is up,
# also when Redis is down ("degraded": the cache is optional), and 503 otherwise.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 3000) + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node runs as PID 1 without an init: the service handles SIGTERM/SIGINT itself and exits 0.
CMD ["node", "dist/main.js"]
