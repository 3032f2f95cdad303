# One image for every shape: `gateway` (CLI, all-in-one) and `gatewayd`
# (all-in-one by default, `--service router|auth|ledger|registry` for the mesh).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tokgateway ./tokgateway
COPY services ./services
COPY libs ./libs
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/tokgateway --create-home gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config /etc/tokgateway
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
