PYTHONUNBUFFERED=1 \
VLLM_CACHE_ROOT=/jobs/study/llama405b__fp8/vllm-cache \
VLLM_NO_USAGE_STATS=1 \
/opt/evalkit/.venv/bin/python -m vllm.entrypoints.openai.api_server \
  --model /ckpt/llama-3.1-405b-instruct/fp8 \
  --host 127.0.0.1 \
  --port 8123 \
  --dtype auto \
  --tensor-parallel-size 8 \
  --served-model-name llama-3.1-405b-instruct__fp8 \
  --max-model-len 8192 \
  --gpu-memory-utilization 0.9 \
  --max-num-seqs 256 \
  --enable-chunked-prefill \
  --disable-uvicorn-access-log \
  --max-num-batched-tokens 16384 \
  --kv-cache-dtype fp8
