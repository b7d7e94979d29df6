"""CTC decoding: greedy, and prefix beam search with word lists, hot-words and a word bigram prior.

Two tiers, as in pyctcdecode: :meth:`BeamSearchDecoder.decode` returns the best text and
:meth:`BeamSearchDecoder.decode_beams` returns n-best :class:`Beam` objects with scores and, per
word, its frame span and confidence.

Word spans and confidences
--------------------------
A word starts at the frame where its first character was first emitted and ends (exclusive) after
the last frame of the run in which its last character is the most probable symbol.  Its confidence
is the mean, over its characters, of the character's posterior probability at its emission frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .alphabet import Alphabet
from .errors import ParameterError, check_int
from .scoring import WordLM, WordTrie, parse_hotwords

__all__ = ["greedy_decode", "greedy_ids", "BeamSearchDecoder", "Beam", "Word"]

_NEG = -math.inf


def _check_logp(logp, n_classes: int) -> np.ndarray:
    lp = np.asarray(logp)
    if lp.ndim != 2 or lp.shape[1] != n_classes:
        raise ParameterError(f"log-probabilities must be [T, {n_classes}], got shape {lp.shape}")
    if lp.shape[0] and not np.all(np.isfinite(lp)):
        raise ParameterError("log-probabilities contain NaN or infinite values")
    return lp


def greedy_ids(logp: np.ndarray, blank: int = 0) -> np.ndarray:
    """Best path: argmax per frame, repeats collapsed, blanks removed."""
    best = np.asarray(logp).argmax(axis=1)
    keep = np.ones(best.size, bool)
    keep[1:] = best[1:] != best[:-1]
    best = best[keep]
    return best[best != blank]


def greedy_decode(logp: np.ndarray, alphabet: Alphabet) -> str:
    """Best-path text, spaces normalised."""
    lp = _check_logp(logp, len(alphabet))
    return " ".join(alphabet.decode(greedy_ids(lp)).split())


@dataclass
class Word:
    word: str
    start_frame: int
    end_frame: int  # exclusive
    confidence: float


@dataclass
class Beam:
    text: str
    score: float  # acoustic + word scores, natural log
    acoustic_score: float
    lm_score: float
    words: List[Word] = field(default_factory=list)


class _Node:
    __slots__ = ("parent", "char", "frame", "partial", "prev_word", "n_words")

    def __init__(self, parent, char, frame, partial, prev_word, n_words):
        self.parent, self.char, self.frame = parent, char, frame
        self.partial, self.prev_word, self.n_words = partial, prev_word, n_words


def _lse(a: float, b: float) -> float:
    if a == _NEG:
        return b
    if b == _NEG:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


class BeamSearchDecoder:
    """CTC prefix beam search.

    Parameters
    ----------
    alphabet : Alphabet
    beam_width : int
        prefixes kept per frame.
    words : iterable of str or None
        if given, only these words can be emitted (a command grammar).
    hotwords : dict, list or None
        ``{"word": boost}`` (see :func:`~speechlstm.scoring.parse_hotwords`).
    lm : WordLM or None
        word bigram prior, weighted by ``alpha``; ``beta`` is a bonus per emitted word.
    token_min_logp : float
        characters below this log-probability at a frame are not tried there.
    beam_prune_logp : float
        prefixes scoring this far below the best one are dropped even if the beam has room.
    """

    def __init__(self, alphabet: Alphabet, *, beam_width: int = 16, words=None, hotwords=None,
                 lm: Optional[WordLM] = None, alpha: float = 0.5, beta: float = 0.0, token_min_logp: float = -5.0,
                 beam_prune_logp: float = -12.0):
        check_int("beam_width", beam_width, 1)
        if alphabet.space < 0 and words is not None:
            raise ParameterError("a word list needs an alphabet with a space symbol")
        self.alphabet = alphabet
        self.beam_width = int(beam_width)
        self.trie = WordTrie(words) if words is not None else None
        self.hotwords = parse_hotwords(hotwords)
        self.lm = lm
        self.alpha, self.beta = float(alpha), float(beta)
        self.token_min_logp = float(token_min_logp)
        self.beam_prune_logp = float(beam_prune_logp)
        self._hot_prefix = {}
        for w, boost in self.hotwords.items():
            for i in range(1, len(w)):
                self._hot_prefix[w[:i]] = max(self._hot_prefix.get(w[:i], 0.0), boost * i / len(w))

    # -- word scoring -----------------------------------------------------------------------------
    def _word_score(self, prev: Optional[str], word: str) -> float:
        s = self.beta + self.hotwords.get(word, 0.0)
        if self.lm is not None:
            s += self.alpha * self.lm.score(prev, word)
        return s

    def _partial_bonus(self, partial: str) -> float:
        return self._hot_prefix.get(partial, 0.0) if partial else 0.0

    # -- search ---------------------------------------------------------------------------------
    def decode(self, logp: np.ndarray) -> str:
        """Best text for per-frame log-probabilities ``[T, C]``."""
        beams = self.decode_beams(logp, n_best=1, with_words=False)
        return beams[0].text if beams else ""

    def decode_beams(self, logp: np.ndarray, *, n_best: Optional[int] = None, with_words: bool = True) -> List[Beam]:
        """N-best beams, best first, with word frame spans and confidences.

        Parameters
        ----------
        logp : np.ndarray [shape=(T, C)]
            per-frame log-probabilities (log-softmax output).
        n_best : int or None
            beams returned (default: all final beams, at most ``beam_width``).
        """
        A = self.alphabet
        lp = _check_logp(logp, len(A)).astype(np.float64, copy=False)
        T, C = lp.shape
        blank, space = A.blank, A.space
        trie = self.trie
        nodes: Dict[int, _Node] = {0: _Node(-1, -1, -1, "", None, 0)}
        children: Dict[Tuple[int, int], int] = {}
        next_id = 1
        # beam state: node id -> [pb, pnb, word_score]
        beams: Dict[int, list] = {0: [0.0, _NEG, 0.0]}
        cand_mask = lp > self.token_min_logp
        cand_mask[:, blank] = False
        for t in range(T):
            row = lp[t]
            cands = np.flatnonzero(cand_mask[t]).tolist()
            lb = row[blank]
            nxt: Dict[int, list] = {}
            for nid, (pb, pnb, ws) in beams.items():
                node = nodes[nid]
                tot = _lse(pb, pnb)
                # stay: blank, or repeat of the last character
                st = nxt.get(nid)
                if st is None:
                    st = nxt[nid] = [_NEG, _NEG, ws]
                st[0] = _lse(st[0], tot + lb)
                if node.char >= 0:
                    st[1] = _lse(st[1], pnb + row[node.char])
                for c in cands:
                    if c == space:
                        if not node.partial:
                            continue  # no leading or double spaces
                        if trie is not None and not trie.is_word(node.partial):
                            continue
                    elif trie is not None and not trie.allows_prefix(node.partial + A.labels[c]):
                        continue
                    p = (pb if c == node.char else tot) + row[c]
                    key = (nid, c)
                    cid = children.get(key)
                    if cid is None or (cid not in beams and cid not in nxt):
                        if cid is None:
                            cid = next_id
                            next_id += 1
                            children[key] = cid
                        if c == space:
                            new_ws = ws + self._word_score(node.prev_word, node.partial)
                            nodes[cid] = _Node(nid, c, t, "", node.partial, node.n_words + 1)
                        else:
                            new_ws = ws
                            nodes[cid] = _Node(nid, c, t, node.partial + A.labels[c], node.prev_word, node.n_words)
                        nxt[cid] = [_NEG, p, new_ws]
                    else:
                        stc = nxt.get(cid)
                        if stc is None:
                            stc = nxt[cid] = [_NEG, _NEG, beams[cid][2]]
                        stc[1] = _lse(stc[1], p)
            beams = self._prune(nxt, nodes)
            if t % 2048 == 2047:
                self._collect(beams, nodes, children)
        return self._finish(beams, nodes, lp, n_best, with_words)

    def _rank(self, st, node) -> float:
        return _lse(st[0], st[1]) + st[2] + self._partial_bonus(node.partial)

    def _prune(self, nxt, nodes):
        if len(nxt) == 1:
            return nxt
        scored = sorted(((self._rank(st, nodes[nid]), nid, st) for nid, st in nxt.items()), reverse=True)
        floor = scored[0][0] + self.beam_prune_logp
        return {nid: st for r, nid, st in scored[: self.beam_width] if r >= floor}

    @staticmethod
    def _collect(beams, nodes, children):
        """Forget nodes no live beam descends from (bounded memory on long audio)."""
        live = set()
        for nid in beams:
            while nid >= 0 and nid not in live:
                live.add(nid)
                nid = nodes[nid].parent
        for nid in [n for n in nodes if n not in live]:
            del nodes[nid]
        for key in [k for k, v in children.items() if v not in live or k[0] not in live]:
            del children[key]

    def _finish(self, beams, nodes, lp, n_best, with_words):
        A = self.alphabet
        final = []
        for nid, (pb, pnb, ws) in beams.items():
            node = nodes[nid]
            if node.partial:
                if self.trie is not None and not self.trie.is_word(node.partial):
                    continue  # unfinished word outside the vocabulary
                ws = ws + self._word_score(node.prev_word, node.partial)
            ac = _lse(pb, pnb)
            final.append((ac + ws, ac, ws, nid))
        final.sort(reverse=True)
        if n_best is not None:
            final = final[:n_best]
        out = []
        for score, ac, ws, nid in final:
            chars = []
            while nid > 0:
                n = nodes[nid]
                chars.append((n.char, n.frame))
                nid = n.parent
            chars.reverse()
            text = "".join(A.labels[c] for c, _ in chars).strip()
            beam = Beam(text=text, score=score, acoustic_score=ac, lm_score=ws)
            if with_words:
                beam.words = self._words(chars, lp)
            out.append(beam)
        return out

    def _words(self, chars, lp) -> List[Word]:
        A = self.alphabet
        T = lp.shape[0]
        words, cur = [], []
        for c, f in chars + [(A.space, T)]:
            if c == A.space:
                if cur:
                    last_c, last_f = cur[-1]
                    end = last_f + 1
                    while end < T and end < f and int(np.argmax(lp[end])) == last_c:
                        end += 1
                    conf = float(np.mean([math.exp(lp[fr, ch]) for ch, fr in cur]))
                    words.append(Word("".join(A.labels[ch] for ch, _ in cur), cur[0][1], end, conf))
                cur = []
            else:
                cur.append((c, f))
        return words
