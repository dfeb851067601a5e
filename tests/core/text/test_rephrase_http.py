"""The OpenAI-compatible rephrase backend against a real server process on 127.0.0.1
(``tests/lm_server.py``) serving the real SmolLM2-135M-Instruct, with faults on demand."""

import dataclasses
import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mm_assets.core.records import Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.rephrase import RephraseConfig, rephrase_samples
from mm_assets.core.text.rephrase_http import (
    BackendError,
    HttpBackendConfig,
    HttpChatClient,
    RateLimiter,
)

REPO = Path(__file__).resolve().parents[3]
KEY = "test-key-3f9a"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _fault(base: str, **plan) -> None:
    req = urllib.request.Request(f"{base}/fault", data=json.dumps(plan).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()


@pytest.fixture(scope="module")
def server():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LM_SERVER_KEY=KEY,
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "lm_server.py"),
                             "--api-key-env", "LM_SERVER_KEY"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 180)
        line = proc.stdout.readline() if ready else ""  # "PORT n" once the model is loaded
        assert line.startswith("PORT "), f"server did not start: {line!r}"
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        yield base
    finally:
        proc.kill()
        proc.wait()


def _client(base, **kw) -> HttpChatClient:
    cfg = HttpBackendConfig(base_url=f"{base}/v1", model="smollm2-135m-instruct", api_key=KEY,
                            concurrency=2, timeout_s=30.0, max_retries=2, backoff_s=0.05,
                            max_tokens=16)
    return HttpChatClient(dataclasses.replace(cfg, **kw))


def _samples(n):
    return [Sample(f"k{i}", [{"from": "human", "value": "<image>\nHow many apples?"},
                             {"from": "gpt", "value": f"There are {i + 2} apples."}])
            for i in range(n)]


def test_real_completions_concurrently_and_cached(server, tmp_path):
    before = _get(f"{server}/stats")["completed"]
    client = _client(server)
    outs = client.generator()(["Say hello.", "Name a colour.", "Count to three."])
    assert all(isinstance(o, str) and o.strip() for o in outs), outs
    assert _get(f"{server}/stats")["completed"] - before == 3
    assert client.stats["requests"] == 3 and client.stats["retries"] == 0
    # Through the rephrase step: every turn is rephrased or rejected with a counted reason.
    counts: dict = {}
    samples = _samples(2)
    out = rephrase_samples(samples, client.generator(), "http:smol", RephraseConfig(
        max_new_tokens=16), Store(str(tmp_path)), counts)
    assert sum(v for k, v in counts.items() if k != "cache_hits") == 2, counts
    assert [s.conversations[0] for s in out] == [s.conversations[0] for s in samples]
    again: dict = {}
    rephrase_samples(samples, client.generator(), "http:smol", RephraseConfig(max_new_tokens=16),
                     Store(str(tmp_path)), again)
    assert again == {**{k: v for k, v in counts.items() if k != "backend_error"},
                     "cache_hits": 2}


def test_500_is_retried_then_succeeds(server):
    _fault(server, status=500, count=2)
    seen = _get(f"{server}/stats")["requests"]
    client = _client(server, concurrency=1)
    text = client.complete("Say hello.")
    assert text.strip()
    assert client.stats["error_http_500"] == 2 and client.stats["retries"] == 2
    assert _get(f"{server}/stats")["requests"] - seen == 3


def test_persistent_500_and_timeouts_keep_the_original_with_a_reason(server, tmp_path):
    samples = _samples(2)
    cfg = RephraseConfig(max_new_tokens=16)
    _fault(server, status=500, count=100)
    counts: dict = {}
    client = _client(server, concurrency=2, max_retries=2)
    out = rephrase_samples(samples, client.generator(), "http:smol", cfg,
                           Store(str(tmp_path)), counts)
    _fault(server, count=0)
    assert counts == {"backend_error": 2}
    assert [s.conversations for s in out] == [s.conversations for s in samples]
    assert client.stats["requests"] == 6 and client.stats["failed"] == 2
    with pytest.raises(BackendError, match="http_500|attempt"):
        _fault(server, status=503, count=1)
        _client(server, max_retries=0).complete("x")
    # A server that sleeps past the timeout: retried, then counted; the next run succeeds.
    _fault(server, sleep_s=1.5, count=2)
    slow = _client(server, concurrency=1, timeout_s=0.5, max_retries=1)
    t0 = time.monotonic()
    counts = {}
    out = rephrase_samples(samples[:1], slow.generator(), "http:smol", cfg,
                           Store(str(tmp_path)), counts)
    assert counts == {"backend_error": 1} and slow.stats["error_TimeoutError"] == 2
    assert out[0].conversations == samples[0].conversations
    assert time.monotonic() - t0 < 5
    time.sleep(2.0)  # let the sleeping handlers finish
    counts = {}
    rephrase_samples(samples[:1], _client(server).generator(), "http:smol", cfg,
                     Store(str(tmp_path)), counts)
    assert "backend_error" not in counts and sum(counts.values()) == 1


def test_wrong_key_is_not_retried_and_key_never_shown(server):
    seen = _get(f"{server}/stats")["unauthorized"]
    client = _client(server, api_key="wrong-key-123", max_retries=3)
    assert client.generator()(["hi"]) == [None]
    assert client.stats["requests"] == 1 and client.stats["error_http_401"] == 1
    assert _get(f"{server}/stats")["unauthorized"] - seen == 1
    assert "wrong-key-123" not in repr(client.cfg)
    with pytest.raises(BackendError) as e:
        client.complete("hi")
    assert "wrong-key-123" not in str(e.value)


def test_bad_config_fails_fast():
    with pytest.raises(ValueError, match="base_url"):
        HttpBackendConfig(base_url="127.0.0.1:8000/v1", model="m")
    with pytest.raises(ValueError, match="rate_limit"):
        HttpBackendConfig(base_url="http://127.0.0.1:8000/v1", model="m", rate_limit=0)


def test_rate_limit_spaces_request_starts():
    limiter = RateLimiter(20.0)  # 20 requests/s: 6 starts take >= 5 intervals of 50 ms
    t0 = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - t0 >= 0.25 - 1e-3


def test_rephrased_asset_uses_the_endpoint_with_an_env_var_key(server, tmp_path, monkeypatch):
    from dagster import EnvVar, materialize

    from mm_assets.assets.merged import rephrased
    from mm_assets.core.shards import read_samples, write_samples
    from resources.models import LanguageModelResource, RephraseEndpoint
    from resources.storage import StorageResource

    store = Store(str(tmp_path))
    samples = _samples(3)
    with store.open_write("merged/00000.tar") as f:
        write_samples(f, samples)
    monkeypatch.setenv("MM_TEST_REPHRASE_KEY", KEY)
    _fault(server, status=500, count=3)  # the first sample's request fails for good
    lm = LanguageModelResource(endpoint=RephraseEndpoint(
        base_url=f"{server}/v1", model="smollm2-135m-instruct",
        api_key=EnvVar("MM_TEST_REPHRASE_KEY"), concurrency=1, max_retries=2, backoff_s=0.05))
    res = materialize([rephrased], resources={"storage": StorageResource(root=str(tmp_path)),
                                              "lm": lm},
                      run_config={"ops": {"rephrased": {"config": {
                          "max_new_tokens": 16, "batch_size": 3}}}})
    assert res.success
    meta = {k: v.value for k, v in res.asset_materializations_for_node("rephrased")[0]
            .metadata.items()}
    assert meta["turns_backend_error"] == 1 and meta["backend_failed"] == 1
    assert meta["backend_retries"] == 2 and meta["model"] == "http:smollm2-135m-instruct"
    assert meta["n_out"] == 3
    with store.open_read("rephrased/00000.tar") as f:
        out = list(read_samples(f))
    assert out[0].conversations == samples[0].conversations  # kept the original
    assert KEY not in repr(lm)
