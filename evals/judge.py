"""ALCE-style entailment judge: does the cited abstracts' text entail an answer sentence?

Asks the configured OpenAI-compatible chat endpoint (``settings.llm``) one yes/no question per cited
sentence; premise = the cited papers' titles and abstracts, hypothesis = the sentence without its
citation markers. The share of "yes" is the report's ``llm_support_rate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigError
from evals.metrics import strip_citations

if TYPE_CHECKING:
    from assistant.models import Paper
    from assistant.settings import Settings

SYSTEM = (
    "You are a strict fact-checking assistant. You decide whether a premise entails a hypothesis: "
    "answer yes only if every claim in the hypothesis is stated in or directly follows from the premise."
)
PROMPT = """Premise:
{premise}

Hypothesis:
{hypothesis}

Is the hypothesis entailed by the premise? Answer with one word: yes or no."""


def premise_text(papers: list[Paper]) -> str:
    """The premise for a sentence: its cited papers' titles and abstracts."""
    return "\n\n".join(f"Title: {p.title}\nAbstract: {p.abstract}" for p in papers)


class LLMJudge:
    """Entailment verdicts from ``settings.llm``'s endpoint (model ``settings.llm.model``, temperature 0)."""

    def __init__(self, settings: Settings) -> None:
        llm = settings.llm
        if not (llm.base_url or llm.api_key):
            raise ConfigError(
                "--judge llm needs an OpenAI-compatible endpoint: set LITASSIST_LLM__BASE_URL "
                "(and LITASSIST_LLM__API_KEY if it needs one), or use --judge none"
            )
        from assistant.endpoint import Endpoint

        self.model = llm.model
        key = llm.api_key.get_secret_value() if llm.api_key else None
        self._endpoint = Endpoint(llm.base_url, key, llm.model, llm.timeout, "LLM judge")
        self._client: Any = self._endpoint.client

    def entails(self, premise: str, hypothesis: str) -> bool:
        """True when the endpoint answers "yes" (anything else counts as no)."""
        try:
            resp = self._client.chat.completions.create(
                model=self.model,
                temperature=0,
                max_tokens=3,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": PROMPT.format(premise=premise, hypothesis=hypothesis)},
                ],
            )
        except Exception as err:
            raise self._endpoint.error(err, "judge") from None
        reply = (resp.choices[0].message.content or "") if resp.choices else ""
        return reply.strip().lower().lstrip("\"'*").startswith("yes")

    def judge_sentence(self, sentence: str, papers: list[Paper]) -> bool:
        """Verdict for one answer sentence against the papers it cites."""
        return self.entails(premise_text(papers), strip_citations(sentence))
