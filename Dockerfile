# synthaug serve in a container: the web page and JSON API over run folders mounted at /runs.
#   CPU (default):  docker build -t synthaug-serve .
#   CUDA:           docker build -t synthaug-serve:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#                   (any CUDA index that has torch 2.14.1; run with --gpus all --device... see docs/serving.md)
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# Which PyTorch build to install: the CPU-only wheels (small) unless a CUDA index is given.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# torch first and on its own: the largest layer stays cached while the code changes
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1

COPY pyproject.toml README.md ./
COPY synthaug ./synthaug
# the package itself (its dependencies are bounded in pyproject.toml), and a user that is not root: a fixed
# uid, so a mounted runs folder can be made readable to it
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve]" \
 && useradd --create-home --uid 10001 synthaug
USER 10001

VOLUME ["/runs"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]

# Inside the container the server must listen beyond loopback for -p to reach it: set SYNTHAUG_TOKEN
# (docker run -e SYNTHAUG_TOKEN=...) unless the published port is bound to 127.0.0.1 on the host.
ENTRYPOINT ["synthaug", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--generator-run", "/runs/cgan", "--classifier-run", "/runs/classifier", "--runs-root", "/runs"]
