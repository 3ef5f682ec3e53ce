#!/usr/bin/env bash
# The prepared GPU checks, one device run (~8 min on one H100): the CUDA tests (FlexAttention vs SDPA
# training step, FlexAttention under context parallelism's local-vs-gathered block mask), then
# bench/bench_gpu_mfu.py at 8K (8 Llama 3 8B blocks) and at 32K (FlexAttention + document mask,
# tokens/s and memory; SDPA on the dense mask alongside). Tables land in $OUT/RESULTS.md: copy them
# into bench/RESULTS.md with the card named.
#
# The device image has torch but not hydra-core / omegaconf / antlr4: carry them as wheels. Once,
# here (the wheels are not committed; .git/info/exclude ignores .whl/):
#   mkdir -p .whl && .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   .venv/bin/pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
# Then the device tool's run: command `bash bench/gpu_checks.sh`, carry [".whl"], timeout_s 600.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_model.py tests/test_context_parallel.py 2>&1 \
    | tee "$OUT/gpu_tests.log" | tail -20
timeout 170 python3 bench/bench_gpu_mfu.py --seq 8192 --layers 8 --steps 8 --results "$OUT/RESULTS.md"
timeout 200 python3 bench/bench_gpu_mfu.py --seq 32768 --layers 4 --steps 5 --ac full --compare-sdpa \
    --results "$OUT/RESULTS.md"
cat "$OUT/RESULTS.md"
