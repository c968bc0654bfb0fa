PYTHONUNBUFFERED=1 \
TMPDIR=/jobs/demo/smollm2__bf16/tmp \
VLLM_CACHE_ROOT=/jobs/demo/smollm2__bf16/vllm-cache \
VLLM_CPU_KVCACHE_SPACE=2 \
VLLM_NO_USAGE_STATS=1 \
/opt/evalkit/.venv/bin/python -m vllm.entrypoints.openai.api_server \
  --model /work/main/.cache/demo/bf16 \
  --host 127.0.0.1 \
  --port 8123 \
  --dtype auto \
  --tensor-parallel-size 1 \
  --served-model-name smollm2-135m-instruct__bf16 \
  --max-model-len 2048 \
  --enforce-eager \
  --disable-uvicorn-access-log
