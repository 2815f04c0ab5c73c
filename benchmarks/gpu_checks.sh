#!/usr/bin/env bash
# The GPU checks, as run on a lent GPU machine (docs/benchmarks.md, "GPU checks (issue 12)"):
# the GPU tests, the BatchNorm page's memory on CUDA, then the engine's tests with CUDA present
# (one process: under pytest-xdist, eight CPU runs at 16 threads each missed their timeouts).
# That machine has its own Python and torch; the app's other packages travel as wheels in .whl/
# (see docs/benchmarks.md). Output goes to $OUT (default: ./gpu-out).
set -o pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys, torch, torchvision, streamlit; print(sys.version.split()[0], torch.__version__, torchvision.__version__, streamlit.__version__, torch.cuda.get_device_name(0))"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs -s tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout 120 python3 benchmarks/bench_batchnorm_memory.py --device cuda --batch 16 \
  --presets densenet121-imagenet vgg11-imagenet resnet18-imagenet googlenet-imagenet 2>&1 | tee "$OUT/bn_memory.log"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_training.py \
  tests/test_resources.py tests/test_faults.py tests/test_batchnorm_stats.py 2>&1 | tail -40 | tee "$OUT/suite.log"
