# cnnviz for a class: one container is one app replica on one GPU (or the CPU).
# docs/teaching.md explains the caps, the GPU and running several replicas (deploy/).
#
#   docker build -t cnnviz .
#   docker run --gpus all -p 8501:8501 cnnviz        # then open http://SERVER:8501
#
# tests/test_container.py lints this file (and builds it where a container engine runs).
FROM python:3.11-slim

# CNNVIZ_DATA: where downloaded data sets (Fashion-MNIST, MNIST, CIFAR-10) go; mount a volume
# there to keep them across container restarts. The offline Digits need nothing.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CNNVIZ_DATA=/data

# The app runs as this user, never as root; /data is the one place it writes.
RUN useradd --create-home --uid 1000 cnnviz \
    && mkdir /data && chown cnnviz:cnnviz /data

WORKDIR /app
# The dependencies first, in their own layer: editing the app does not reinstall torch.
# torch and torchvision come from PyPI as pinned in requirements.txt (the Linux wheels carry
# their CUDA libraries, so the image runs on a GPU host and on a CPU-only one alike).
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Only what the app runs: the entry point, the pages, the library and Streamlit's config.
COPY .streamlit/ .streamlit/
COPY cnnviz/ cnnviz/
COPY pages/ pages/
COPY streamlit_app.py ./

USER cnnviz
EXPOSE 8501
VOLUME ["/data"]
# python:3.11-slim has no curl: Python asks Streamlit's own health endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]
CMD ["streamlit", "run", "streamlit_app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
