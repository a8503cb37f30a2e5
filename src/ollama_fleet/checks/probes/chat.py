"""chat: a tiny /api/chat, plain and streamed: status, time to first token, tokens/s.

The streamed answer is judged against the target's latency thresholds: the time to its
first token, and its rate: eval_count / eval_duration from Ollama's final chunk when it
sends them, else the content chunks after the first over the time they took (details
`tokens_per_second_source`: "eval_duration" or "chunks").
"""

from __future__ import annotations

import json
import time
from typing import Any

from ollama_fleet.checks.classify import (
    classify_exception,
    classify_status,
    classify_stream_error,
    judge_rate,
    judge_time,
)
from ollama_fleet.checks.http import json_body, request_timings
from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, Status, fail, ok, warn
from ollama_fleet.checks.probe import ProbeContext, Stopwatch
from ollama_fleet.values import canonical_model_name

ACTION = "POST /api/chat"


def tokens_per_second(final: dict[str, Any]) -> float | None:
    """eval_count / eval_duration (ns), as Ollama reports it in the final chunk."""
    count, duration = final.get("eval_count"), final.get("eval_duration")
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    if isinstance(duration, int | float) and duration > 0 and count > 0:
        return round(count / duration * 1e9, 1)
    return None


def chunk_rate(token_times: list[float]) -> float | None:
    """Tokens/s from when the content chunks arrived (s): those after the first, over
    the time since the first. None with fewer than two, or no time between them."""
    if len(token_times) < 2 or token_times[-1] <= token_times[0]:
        return None
    return round((len(token_times) - 1) / (token_times[-1] - token_times[0]), 1)


def _payload(ctx: ProbeContext, model: str, *, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": ctx.settings.chat_prompt}],
        "stream": stream,
        "options": {"num_predict": ctx.settings.chat_max_tokens},
    }


async def _plain(ctx: ProbeContext, model: str, details: dict[str, Any]) -> Finding:
    action = f"{ACTION} (stream=false)"
    start = time.perf_counter()
    try:
        request = ctx.client.build_request(
            "POST", "/api/chat", json=_payload(ctx, model, stream=False)
        )
        response = await ctx.send(request)
    except Exception as exc:
        return classify_exception(exc, action=action)
    if response.timings is not None:
        details["timings"] = {**response.timings, "first_token_ms": None}
    if response.status_code != 200:
        return classify_status(response.status_code, response.content, action=action, model=model)
    try:
        data = json_body(response)
    except ValueError as exc:
        return classify_exception(exc, action=action)
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return classify_stream_error(data["error"], action=action, model=model)
        return fail(FailureClass.BAD_RESPONSE, f"{action}: no message in the answer")
    details["plain_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return ok(f"{model} answers a plain chat")


async def _streamed(ctx: ProbeContext, model: str, details: dict[str, Any]) -> list[Finding]:
    """The streamed chat's finding, then its latency findings (slow, if any)."""
    action = f"{ACTION} (stream=true)"
    start = time.perf_counter()
    token_times: list[float] = []
    final: dict[str, Any] | None = None
    received = 0
    try:
        payload = _payload(ctx, model, stream=True)
        async with ctx.client.stream("POST", "/api/chat", json=payload) as response:
            timings = request_timings(response.request)
            if response.status_code != 200:
                body = await response.aread()
                return [classify_status(response.status_code, body, action=action, model=model)]
            async for line in response.aiter_lines():
                received += len(line)
                if received > ctx.settings.max_answer_bytes:
                    limit = ctx.settings.max_answer_bytes
                    too_large = f"{action}: answer larger than {limit} bytes"
                    return [fail(FailureClass.BAD_RESPONSE, too_large)]
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if not isinstance(chunk, dict):
                    return [fail(FailureClass.BAD_RESPONSE, f"{action}: chunk is not an object")]
                if isinstance(chunk.get("error"), str):
                    return [classify_stream_error(chunk["error"], action=action, model=model)]
                message = chunk.get("message")
                if isinstance(message, dict) and message.get("content"):
                    token_times.append(time.perf_counter())
                if chunk.get("done") is True:
                    final = chunk
                    break
    except Exception as exc:
        return [classify_exception(exc, action=action)]
    if final is None:
        return [fail(FailureClass.BAD_RESPONSE, f"{action}: stream ended without a done chunk")]
    first_token_ms = round((token_times[0] - start) * 1000, 2) if token_times else None
    rate, source = tokens_per_second(final), "eval_duration"
    if rate is None:
        rate, source = chunk_rate(token_times), "chunks"
    if timings is not None:
        details["timings"] = {**timings.summary(), "first_token_ms": first_token_ms}
    details.update(
        stream_ms=round((time.perf_counter() - start) * 1000, 2),
        first_token_ms=first_token_ms,
        tokens_per_second=rate,
        tokens_per_second_source=None if rate is None else source,
        eval_count=final.get("eval_count"),
        prompt_eval_count=final.get("prompt_eval_count"),
    )
    ttft = "no token" if first_token_ms is None else f"first token in {first_token_ms:.0f} ms"
    speed = "" if rate is None else f", {rate:g} tokens/s"
    policy = ctx.target.latency
    judged = (
        judge_time("first token after", first_token_ms, policy.first_token_ms),
        judge_rate(rate, policy.tokens_per_s),
    )
    return [ok(f"{model} streams: {ttft}{speed}"), *(f for f in judged if f is not None)]


def _names(entry: Any) -> set[str]:
    """The canonical names an /api/ps entry goes by (`name` and `model`)."""
    if not isinstance(entry, dict):
        return set()
    return {canonical_model_name(str(entry.get(key))) for key in ("name", "model")}


def placement(models: Any, model: str, details: dict[str, Any]) -> Finding:
    """Where /api/ps says `model` runs: all in VRAM (ok), partly (warn), CPU or gone (fail).

    The bytes in VRAM go into `details` as size_vram.
    """
    wanted = {canonical_model_name(model)}
    entries = models.get("models") if isinstance(models, dict) else None
    if not isinstance(entries, list):
        return fail(FailureClass.BAD_RESPONSE, "GET /api/ps: no model list in the answer")
    entry = next((e for e in entries if _names(e) & wanted), None)
    if entry is None:
        return fail(
            FailureClass.CPU_FALLBACK,
            f"{model} is not loaded right after the chat (GET /api/ps), so where it ran "
            "cannot be told: is ollama_keep_alive 0?",
        )
    size, vram = entry.get("size"), entry.get("size_vram")
    details["size_vram"] = vram
    if not isinstance(size, int) or not isinstance(vram, int) or size <= 0:
        return fail(FailureClass.BAD_RESPONSE, f"GET /api/ps: no size/size_vram for {model}")
    if vram <= 0:
        return fail(FailureClass.CPU_FALLBACK, f"{model} runs on the CPU (size_vram 0 in /api/ps)")
    share = vram / size
    if share < 1:
        return warn(
            FailureClass.CPU_FALLBACK,
            f"{model} is only {share:.0%} in VRAM: the rest runs on the CPU",
        )
    return ok(f"{model} runs on the GPU ({vram / 2**20:.0f} MiB in VRAM)")


async def _on_gpu(ctx: ProbeContext, model: str, details: dict[str, Any]) -> Finding:
    try:
        response = await ctx.get("/api/ps")
    except Exception as exc:
        return classify_exception(exc, action="GET /api/ps")
    if response.status_code != 200:
        return classify_status(response.status_code, response.content, action="GET /api/ps")
    try:
        data = json_body(response)
    except ValueError as exc:
        return classify_exception(exc, action="GET /api/ps")
    return placement(data, model, details)


async def probe_chat(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "chat")
    model = ctx.target.model_for_chat
    if model is None:  # the runner plans chat only where a model is known
        raise ValueError(f"{ctx.target.name}: no model to chat with")
    details: dict[str, Any] = {"model": model}
    plain = await _plain(ctx, model, details)
    if plain.status is not Status.OK:
        return watch.result([plain], details)  # a streamed try would only say the same
    streamed, *slow = await _streamed(ctx, model, details)
    findings = [streamed, plain, *slow]
    if ctx.target.expect_gpu:  # right after the chat, while the model is still loaded
        findings.append(await _on_gpu(ctx, model, details))
    return watch.result(findings, details)
