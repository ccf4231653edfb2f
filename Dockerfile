# Shiftgate gateway image.
#
# Production runs on PostgreSQL (DATABASE_URL=postgresql://...) with Redis (REDIS_URL=redis://...),
# takes the root key from SHIFTGATE_ROOT_KEY (base64 of 32 bytes, e.g. `openssl rand -base64 32`)
# or from a mounted key file (SHIFTGATE_ROOT_KEY_FILE=/run/secrets/...), and applies migrations
# before serving, e.g. a compose service command:
#     sh -c "shiftgate migrate && exec shiftgate serve --workers 2"
# (see docker-compose.yml). With several replicas, run `shiftgate migrate` once, before them.
#
# Without DATABASE_URL the image falls back to SQLite in /app/var, which needs `shiftgate init`
# first (it creates the root key file and the schema); keep /app/var on a volume:
#     docker run --rm -v shiftgate-var:/app/var IMAGE shiftgate init
#     docker run -p 8000:8000 -v shiftgate-var:/app/var IMAGE
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system shiftgate \
    && useradd --system --gid shiftgate --home-dir /app --shell /usr/sbin/nologin shiftgate

# The sources stay outside the working directory, so that only the installed package is imported.
WORKDIR /usr/src/shiftgate
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY tenants/ tenants/
COPY sharing/ sharing/
COPY policies/ policies/
COPY migrations/ migrations/
RUN pip install --no-cache-dir .

# var/ (relative to the working directory) holds the root key file, the SQLite database and
# demo.json when they are used; it must be writable by the user that runs the gateway.
WORKDIR /app
RUN mkdir -p /app/var && chown -R shiftgate:shiftgate /app && chmod 0700 /app/var
USER shiftgate

ENV SHIFTGATE_HOST=0.0.0.0
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SHIFTGATE_PORT', '8000'), timeout=4)" || exit 1

CMD ["shiftgate", "serve"]
