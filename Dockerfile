# One image for every shape: `gateway` (CLI, all-in-one) and `gatewayd`
# (all-in-one by default, `--service router|auth|ledger|registry` for the mesh).
# Built as tokgateway:<package version> (`make d-build`, `docker compose build`),
# the tag deploy/k8s references. `make d-test` builds the `test` stage and runs
# the suite in it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY tokgateway ./tokgateway
COPY services ./services
COPY libs ./libs
# the web console as built by `make ui` beforehand (only its package marker otherwise)
COPY fe/dist ./fe/dist
# the image runs the mesh too: the wheel plus the [mesh] drivers
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
    && pip wheel --no-cache-dir --wheel-dir /wheels ".[mesh]"

FROM python:3.11-slim AS test
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip==24.3.1
COPY . .
RUN pip install --no-cache-dir -e ".[dev,mesh]"
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
