"""Word-level scoring for the beam search: a vocabulary trie, a word bigram prior, hot-words."""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, Iterable, Optional

from .alphabet import normalize_text
from .errors import ParameterError, check_real

__all__ = ["WordTrie", "WordLM", "parse_hotwords"]


class WordTrie:
    """The allowed words, as a set of complete words plus the set of their prefixes."""

    def __init__(self, words: Iterable[str]):
        ws = [normalize_text(w) for w in words]
        ws = [w for w in ws if w]
        if not ws:
            raise ParameterError("the word list is empty")
        bad = [w for w in ws if " " in w]
        if bad:
            raise ParameterError(f"word list entries must be single words, got {bad[:3]}")
        self.words = frozenset(ws)
        self.prefixes = frozenset(w[:i] for w in ws for i in range(len(w) + 1))

    def allows_prefix(self, partial: str) -> bool:
        return partial in self.prefixes

    def is_word(self, partial: str) -> bool:
        return partial in self.words


class WordLM:
    """Word bigram prior with add-k smoothing and interpolation with the unigram.

    ``score(prev, word)`` is ``log P(word | prev)`` (natural log); ``prev`` is ``None`` at the start.
    """

    def __init__(self, unigrams: Dict[str, float], bigrams: Dict[tuple, float], *, oov_logp: float = -12.0,
                 lam: float = 0.7):
        self.unigrams = unigrams
        self.bigrams = bigrams
        self.oov_logp = float(oov_logp)
        self.lam = float(lam)

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, k: float = 0.1, lam: float = 0.7) -> "WordLM":
        uni, bi = Counter(), Counter()
        for t in texts:
            ws = ["<s>"] + normalize_text(t).split()
            uni.update(ws[1:])
            bi.update(zip(ws[:-1], ws[1:]))
        if not uni:
            raise ParameterError("cannot build a word LM from no text")
        V = len(uni)
        N = sum(uni.values())
        unigrams = {w: math.log((c + k) / (N + k * V)) for w, c in uni.items()}
        ctx = Counter()
        for (a, _), c in bi.items():
            ctx[a] += c
        bigrams = {}
        for (a, b), c in bi.items():
            p_bi = (c + k) / (ctx[a] + k * V)
            bigrams[(a, b)] = math.log(lam * p_bi + (1 - lam) * math.exp(unigrams[b]))
        return cls(unigrams, bigrams, oov_logp=math.log(k / (N + k * V)) - 2.0, lam=lam)

    def score(self, prev: Optional[str], word: str) -> float:
        key = (prev or "<s>", word)
        if key in self.bigrams:
            return self.bigrams[key]
        if word in self.unigrams:  # unseen pair: the unigram share of the interpolation
            return math.log(1 - self.lam) + self.unigrams[word]
        return self.oov_logp

    def to_dict(self) -> dict:
        return {"unigrams": self.unigrams, "bigrams": {f"{a} {b}": v for (a, b), v in self.bigrams.items()},
                "oov_logp": self.oov_logp, "lam": self.lam}

    @classmethod
    def from_dict(cls, d: dict) -> "WordLM":
        return cls(dict(d["unigrams"]), {tuple(k.split(" ")): v for k, v in d["bigrams"].items()},
                   oov_logp=d["oov_logp"], lam=d.get("lam", 0.7))


def parse_hotwords(hotwords) -> Dict[str, float]:
    """Hot-words as ``{"word": boost}``; accepts a dict, a list of words (boost 5.0) or
    ``"word:boost"`` strings.  Boosts are natural-log bonuses added when the word is emitted."""
    if hotwords is None:
        return {}
    items = hotwords.items() if isinstance(hotwords, dict) else hotwords
    out = {}
    for item in items:
        if isinstance(item, str):
            word, _, boost = item.partition(":")
            try:
                boost = float(boost) if boost else 5.0
            except ValueError:
                raise ParameterError(f"bad hot-word {item!r}: expected WORD or WORD:BOOST") from None
        else:
            word, boost = item
        boost = check_real(f"the boost of hot-word {word!r}", boost)
        words = normalize_text(str(word)).split()
        if not words:
            raise ParameterError(f"bad hot-word {item!r}: no letters")
        for w in words:
            out[w] = boost
    return out
