# The Ferry worker (and CLI) as an image: built in one stage, run in a slim one as a non-root user
# on the current Node LTS, with CA certificates for TLS to Temporal Cloud or a managed Postgres.
FROM node:22-bookworm-slim AS build
WORKDIR /ferry
COPY . .
# npm ci builds dist/ (the prepare script): compiled code and the prebundled workflows.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /ferry
COPY --from=build /ferry/package.json ./
COPY --from=build /ferry/node_modules ./node_modules
COPY --from=build /ferry/dist ./dist
COPY --from=build /ferry/bin ./bin
COPY --from=build /ferry/schema ./schema
COPY --from=build /ferry/examples ./examples
ENV NODE_ENV=production
USER node
# tini passes SIGTERM on, so the worker shuts down gracefully (it finishes its heartbeats).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/ferry.js"]
CMD ["worker"]
