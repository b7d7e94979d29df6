"""Output symbols and text normalisation.

Index 0 is the CTC blank; then, by default, space, apostrophe and a–z (29 symbols).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, List, Sequence

import numpy as np

from .errors import ParameterError

__all__ = ["Alphabet", "normalize_text", "DIGIT_WORDS", "BLANK"]

BLANK = "<b>"
DEFAULT_SYMBOLS = " '" + "abcdefghijklmnopqrstuvwxyz"
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def normalize_text(text: str) -> str:
    """Normalise text for training targets and references.

    Lower case; accents stripped (é → e); every digit spelled out on its own ("7" → "seven",
    "42" → "four two", as digit strings are read in commands); apostrophes kept inside words
    ("don't"), every other punctuation mark dropped (hyphens and slashes become spaces);
    whitespace collapsed.
    """
    if not isinstance(text, str):
        raise ParameterError(f"text must be a str, got {type(text).__name__}")
    t = unicodedata.normalize("NFKD", text)
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).lower()
    t = t.replace("\u2019", "'").replace("`", "'")
    t = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m.group())]} ", t)
    t = re.sub(r"[-/_]", " ", t)
    t = re.sub(r"[^a-z' ]", "", t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)  # quotes, not apostrophes
    return re.sub(r"\s+", " ", t).strip()


class Alphabet:
    """Symbols of a CTC model: ``labels[0]`` is the blank.

    Parameters
    ----------
    symbols : str or sequence of str
        the non-blank symbols, each one character (default: space, apostrophe, a–z).
    """

    def __init__(self, symbols: Sequence[str] = DEFAULT_SYMBOLS):
        syms = list(symbols)
        if not syms or any(not isinstance(s, str) or len(s) != 1 for s in syms):
            raise ParameterError(f"symbols must be single characters, got {syms!r}")
        if len(set(syms)) != len(syms):
            raise ParameterError(f"symbols must be unique, got {''.join(syms)!r}")
        self.symbols = syms
        self.labels = [BLANK] + syms
        self._index = {s: i + 1 for i, s in enumerate(syms)}
        self.space = self._index.get(" ", -1)

    blank = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other) -> bool:
        return isinstance(other, Alphabet) and other.symbols == self.symbols

    def __repr__(self) -> str:
        return f"Alphabet({''.join(self.symbols)!r})"

    def encode(self, text: str, *, normalize: bool = True) -> np.ndarray:
        """Text -> label indices (int32).  Unknown characters raise ``ParameterError``."""
        t = normalize_text(text) if normalize else text
        try:
            return np.array([self._index[ch] for ch in t], np.int32)
        except KeyError as exc:
            raise ParameterError(f"character {exc.args[0]!r} of {text!r} is not in {self!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Label indices -> text (blanks skipped, no collapsing)."""
        return "".join(self.labels[i] for i in ids if i != 0)

    def to_list(self) -> List[str]:
        return list(self.symbols)

    @classmethod
    def from_list(cls, symbols: Sequence[str]) -> "Alphabet":
        return cls(list(symbols))
