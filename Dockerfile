# One image for every shape: `gateway` (CLI, all-in-one) and `gatewayd`
# (all-in-one by default, `--service router|auth|ledger|registry` for the mesh).
# Built as tokgateway:<package version> (`make d-build`, `docker compose build`),
# the tag deploy/k8s references. `make d-test` builds the `test` stage and runs
# the suite in it.

# The web console, built here from fe/ (no Node.js needed on the host, and a
# host's own fe/dist never reaches the image): fe/dist/web and fe/dist/h5, which
# the wheel carries as tokgateway.console and every router serves at /ui.
# Vite needs Node.js 20.19 or later.
FROM node:22-slim AS console
WORKDIR /src/fe
# the npm packages first: this layer stays until the lock file changes
COPY fe/package.json fe/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY fe ./
RUN npm run -s build \
    && test -f dist/web/index.html && test -f dist/h5/index.html && test -f dist/__init__.py

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY tokgateway ./tokgateway
COPY services ./services
COPY libs ./libs
COPY --from=console /src/fe/dist ./fe/dist
# the image runs the mesh too: the wheel plus the [mesh] drivers
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
    && pip wheel --no-cache-dir --wheel-dir /wheels ".[mesh]"

# The suite's tools from Debian, as .ci/run installs them on a build machine:
# Node.js and npm build the console (`make ui`), Chromium runs its browser
# test, promtool checks the alert rules, tinyproxy serves the proxy tests.
# Trixie, because Vite needs Node.js 20.19 or later (bookworm has 18).
FROM python:3.11-slim-trixie AS test
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make nodejs npm chromium prometheus tinyproxy \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --upgrade pip==24.3.1
# the console's npm packages first: this layer stays until the lock file changes
WORKDIR /src/fe
COPY fe/package.json fe/package-lock.json ./
RUN npm ci --no-audit --no-fund
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir -e ".[dev,mesh]" \
    && make ui \
    && test -f fe/dist/web/index.html && test -f fe/dist/h5/index.html
# integration tests need PostgreSQL, NATS and Redis servers beside the image
CMD ["python", "-m", "pytest", "-q", "-m", "not integration", "tests/unit", "tests/e2e"]

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/tokgateway --create-home gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
COPY config /etc/tokgateway
COPY config/setting.example.ini /etc/tokgateway/setting.ini
ENV GATEWAY_CONFIG_DIR=/etc/tokgateway \
    GATEWAY_DATA_DIR=/var/lib/tokgateway \
    GATEWAY_ENV=live \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8081 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /var/lib/tokgateway
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request;urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT','8081'), timeout=2)"]
ENTRYPOINT ["gatewayd"]
