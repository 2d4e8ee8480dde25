# bdr operator image. Not built by the tests on this machine (no Docker engine here); see README.
# Stage 1: production dependencies only, installed reproducibly from the lockfile.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Stage 2: the runtime. bdr runs its TypeScript through tsx (a production dependency), so there is no build
# step to drift from the sources. git is there for `bdr up --repo URL`.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY api ./api
COPY cluster ./cluster
COPY gitops ./gitops
COPY controllers ./controllers
COPY planning ./planning
COPY zfs ./zfs
COPY nodes ./nodes
COPY metrics ./metrics
COPY cli ./cli
COPY crds ./crds
USER 65532:65532
ENV NODE_ENV=production BDR_LOG_FORMAT=json
EXPOSE 9464
ENTRYPOINT ["node", "bin/bdr.js"]
CMD ["run"]
