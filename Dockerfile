# mlauto image: the entry point is the Hydra launcher.
#   docker build -t mlauto .
#   docker run --rm --shm-size=2g -p 8000:8000 -v "$PWD/runs:/app/runs" mlauto experiment=quickstart serve.host=0.0.0.0
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The LightGBM and xgboost-cpu wheels link the OpenMP runtime, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code edits do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p mlauto && touch mlauto/__init__.py && pip install -e . && rm -rf mlauto

COPY mlauto ./mlauto
RUN pip install --no-deps -e .

# Run as an unprivileged user: a compromised request handler gets no root in the container.
RUN useradd --create-home --uid 10001 mlauto && mkdir -p /app/runs && chown -R mlauto:mlauto /app
USER mlauto

# /health is the one route that never needs the admin token.
ENV MLAUTO_HEALTH_URL=http://127.0.0.1:8000/health
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['MLAUTO_HEALTH_URL'], timeout=4)"

# Serve endpoint, Ray dashboard, MLflow UI (mlflow ui --host 0.0.0.0 --backend-store-uri sqlite:////app/runs/mlflow.db).
EXPOSE 8000 8265 5000
VOLUME ["/app/runs"]
ENTRYPOINT ["mlauto"]
CMD ["experiment=quickstart", "serve.host=0.0.0.0"]
