"""Context fitting for a run: each agent's prompt is fitted into its model's window, and a summary of older turns,
once written, is reused on later turns (the question, the summary, then what came after it), so a long discussion
costs one summary call per overflow, not one per turn. The offline model trims its own prompt."""

from __future__ import annotations

from backend.events.schema import ContextSummarised
from backend.models import Participant
from backend.orchestrator.run_context import RunContext
from backend.providers.base import GenerationRequest, ModelProvider, TranscriptEntry
from backend.providers.context_budget import context_window, fit_transcript, summary_entry


class ContextFitter:
    """Fits prompts for one run, remembering per agent the summary its window overflowed into."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        # Per agent: (seq of the last message a summary covers, the summary) for agents whose window overflowed.
        self._summaries: dict[int, tuple[int, str]] = {}

    async def fit(
        self,
        provider: ModelProvider,
        agent: Participant,
        system: str,
        transcript: list[TranscriptEntry],
        max_tokens: int,
    ) -> GenerationRequest:
        """The request for `agent`'s turn: `transcript` (the run's transcript then the cue) fitted to its window."""
        assert agent.id is not None
        model = agent.model or ""
        newest = 1 << 62  # the speaker cue has no seq: it is always newer than anything summarised
        read = len(transcript) - 1  # the entries before the cue are the first `read` rows of the transcript

        def transcript_seqs() -> list[int]:  # built only when a summary needs them (rarely: not on every turn)
            return [*(row[0] for row in self.ctx.transcript.rows[:read]), newest]

        cached = self._summaries.get(agent.id)
        seqs: list[int] = []
        if cached:
            seqs = transcript_seqs()
            covered_seq, text = cached
            later = [(e, q) for e, q in zip(transcript[1:], seqs[1:], strict=True) if q > covered_seq]
            transcript = [transcript[0], summary_entry(text), *(e for e, _ in later)]
            seqs = [seqs[0], covered_seq, *(q for _, q in later)]
        fitted = await fit_transcript(
            provider,
            model,
            system,
            transcript,
            window=context_window(agent.provider or "", model),
            max_tokens=max_tokens,
            summarise=agent.provider != "offline",
        )
        if fitted.summary_usage is not None:
            await self.ctx.record_call(agent, "summary", fitted.summary_usage, 0)
        if fitted.summary and fitted.covered:
            seqs = seqs or transcript_seqs()
            covered_seq = max(q for q in seqs[1 : fitted.covered + 1] if q < newest)
            self._summaries[agent.id] = (covered_seq, fitted.summary)
            await self.ctx.log(
                ContextSummarised(
                    discussion_id=self.ctx.discussion_id,
                    participant_id=agent.id,
                    author_name=agent.name,
                    summary=fitted.summary,
                    covered_through_seq=covered_seq,
                    covered=fitted.covered,
                )
            )
        return GenerationRequest(
            model=model, system=fitted.system, transcript=fitted.entries, max_tokens=fitted.max_tokens
        )
