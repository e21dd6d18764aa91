# The Ferry worker (and CLI) as an image, for docker-compose.yml.
FROM node:20-bookworm-slim
WORKDIR /ferry
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY . .
ENTRYPOINT ["node", "bin/ferry.js"]
CMD ["worker"]
