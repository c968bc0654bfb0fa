EVALKIT_RAY_GPUS=16 \
EVALKIT_RAY_NODES=2 \
EVALKIT_RAY_PORT=6379 \
EVALKIT_RAY_PYTHON=/opt/evalkit/.venv/bin/python \
EVALKIT_RAY_TIMEOUT_S=600 \
EVALKIT_RAY_WORKER_LOG=/jobs/study/llama-3.1-405b-instruct.bf16/ray-workers.log \
PYTHONUNBUFFERED=1 \
VLLM_CACHE_ROOT=/jobs/study/llama-3.1-405b-instruct.bf16/vllm-cache \
VLLM_NO_USAGE_STATS=1 \
bash /opt/evalkit/evalkit/serve/ray_cluster.sh /opt/evalkit/.venv/bin/python -m vllm.entrypoints.openai.api_server \
  --model /ckpt/llama-3.1-405b-instruct/bf16 \
  --host 127.0.0.1 \
  --port 8123 \
  --dtype auto \
  --tensor-parallel-size 8 \
  --pipeline-parallel-size 2 \
  --distributed-executor-backend ray \
  --served-model-name llama-3.1-405b-instruct__bf16 \
  --max-model-len 131072 \
  --gpu-memory-utilization 0.9 \
  --enable-chunked-prefill \
  --disable-uvicorn-access-log
