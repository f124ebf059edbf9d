# meshlet: one image for the webhook (`meshlet webhook`), the sidecar (`meshlet proxy`) and the init
# step (`meshlet init`). Build: docker build -t ghcr.io/meshlet/meshlet:0.1.0 .

# --- build: compile and bundle TypeScript into dist/meshlet/ and the SO_ORIGINAL_DST N-API addon into build/ ---
FROM node:24-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# `npm ci` runs the package's install script (node-gyp builds the addon from binding.gyp) and
# prepare (tsc, then esbuild bundles dist/ into dist/meshlet/); then the dev dependencies are dropped.
RUN npm ci --no-audit --no-fund \
 && test -f build/Release/meshlet_original_dst.node \
 && test -f dist/meshlet/bin.js \
 && npm prune --omit=dev --no-audit --no-fund

# --- runtime: Node, iptables for `meshlet init`, the app; runs as the proxy's non-root UID ---
FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist/meshlet ./dist/meshlet
COPY --from=build /app/build/Release/meshlet_original_dst.node ./build/Release/meshlet_original_dst.node
# 2102 is PROXY_UID (src/common/contract.ts): the UID meshlet init exempts from redirection.
# The init container overrides it with runAsUser 0 to get NET_ADMIN.
USER 2102:2102
ENTRYPOINT ["node", "/app/bin/meshlet.js"]
CMD ["--help"]
