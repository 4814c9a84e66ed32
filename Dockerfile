# One image for every gridloop service; the command picks the service:
#   docker run --rm gridloop:0.1.0 run intake
# docker-compose.yml builds it and runs one container per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A CJK font for the monthly report's charts and PDF (Chinese names, not their Latin part).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# Exact versions come from constraints.txt; every dependency ships manylinux wheels,
# so the slim image needs no compiler.
RUN pip install -c constraints.txt . \
    && groupadd --system --gid 10001 gridloop \
    && useradd --system --uid 10001 --gid gridloop --create-home --home-dir /home/gridloop gridloop \
    && install -d -o 10001 -g 10001 -m 700 /var/lib/gridloop-keys

# Unprivileged from here on (numeric, so runAsNonRoot can verify it); the home directory
# is the only writable place a service needs, besides intake's key volume (a new volume
# takes this directory's owner: docs/personal-data.md).
USER 10001:10001
WORKDIR /home/gridloop

# intake, dispatch, notify, sla, projections (GRIDLOOP_<SERVICE>_PORT)
EXPOSE 8000 8001 8002 8003 8004

ENTRYPOINT ["gridloop"]
CMD ["--help"]
