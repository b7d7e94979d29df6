import re

import numpy as np
import pytest

from ctc_synth import make_logp
from speechlstm import ParameterError
from speechlstm.alphabet import Alphabet
from speechlstm.decoding import BeamSearchDecoder, greedy_decode, greedy_ids
from speechlstm.kws import keyword_scores, spot_keywords
from speechlstm.scoring import WordLM, parse_hotwords

A = Alphabet()


def test_greedy_collapses_repeats_and_blanks():
    lp = np.log(np.full((6, 4), 0.01))
    for t, k in enumerate([1, 1, 0, 1, 2, 2]):
        lp[t, k] = 0
    assert greedy_ids(lp).tolist() == [1, 1, 2]
    assert greedy_decode(make_logp("see  you"), A) == "see you"


def test_beam_equals_greedy_on_clean_input_and_gives_timings():
    lp = make_logp("go left stop", frames_per=3, lead=2)
    dec = BeamSearchDecoder(A, beam_width=8)
    assert dec.decode(lp) == "go left stop"
    beams = dec.decode_beams(lp, n_best=3)
    assert len(beams) == 3 and beams[0].score >= beams[1].score >= beams[2].score
    words = beams[0].words
    assert [w.word for w in words] == ["go", "left", "stop"]
    # 'g' peaks at frame 2 (after 2 lead blanks), 4 frames per char
    assert words[0].start_frame == 2 and words[0].end_frame == 2 + 4 + 1
    assert words[1].start_frame == 2 + 3 * 4
    assert all(0.9 < w.confidence <= 1 for w in words)


def test_beam_search_sums_paths_unlike_greedy():
    """Classic case: best path is blank everywhere, but 'a' has more total probability."""
    p = np.array([[0.6, 0.4], [0.6, 0.4]])  # classes: blank, a
    alpha = Alphabet("a")
    lp = np.log(p)
    assert greedy_decode(lp, alpha) == ""
    # P("") = 0.36 ; P("a") = 0.4*0.6 + 0.6*0.4 + 0.4*0.4 = 0.64
    beams = BeamSearchDecoder(alpha, beam_width=4, token_min_logp=-10).decode_beams(lp)
    assert beams[0].text == "a" and beams[0].score == pytest.approx(np.log(0.64))
    assert beams[1].text == "" and beams[1].score == pytest.approx(np.log(0.36))


def test_word_list_constrains_output():
    lp = make_logp("go lefd stap", confuse={"d": ("t", 0.3), "a": ("o", 0.3)})
    assert BeamSearchDecoder(A).decode(lp) == "go lefd stap"
    dec = BeamSearchDecoder(A, words=["go", "left", "stop", "yes"], token_min_logp=-12)
    assert dec.decode(lp) == "go left stop"
    with pytest.raises(ParameterError, match="single words"):
        BeamSearchDecoder(A, words=["two words"])


def test_hotwords_tip_the_balance():
    lp = make_logp("bad", confuse={"a": ("e", 0.45)})
    assert BeamSearchDecoder(A).decode(lp) == "bad"
    assert BeamSearchDecoder(A, hotwords={"bed": 3.0}).decode(lp) == "bed"
    assert parse_hotwords(["Bed:2.5", "go"]) == {"bed": 2.5, "go": 5.0}
    with pytest.raises(ParameterError, match="WORD:BOOST"):
        parse_hotwords(["bed:loud"])


@pytest.mark.parametrize("hot, message", [
    (["bed:nan"], "the boost of hot-word 'bed' must be a finite number, got nan"),
    (["bed:-inf"], "the boost of hot-word 'bed' must be a finite number, got -inf"),
    ({"bed": "3"}, "the boost of hot-word 'bed' must be a finite number, got '3'"),
    (["!!:2"], "bad hot-word '!!:2': no letters"),
])
def test_a_hot_word_boost_must_be_a_finite_number_and_a_word(hot, message):
    """A NaN boost was taken: a beam emitting the word scored NaN and stayed among the n best, ranked nowhere."""
    with pytest.raises(ParameterError, match=re.escape(message)):
        parse_hotwords(hot)


def test_bigram_prior_prefers_likely_sequences():
    lm = WordLM.from_texts(["turn left now", "turn left", "go left now"] * 5)
    assert lm.score("turn", "left") > lm.score("turn", "now") > lm.oov_logp
    lp = make_logp("turn loft", confuse={"o": ("e", 0.4)})
    assert BeamSearchDecoder(A).decode(lp) == "turn loft"
    assert BeamSearchDecoder(A, lm=lm, alpha=1.0).decode(lp) == "turn left"
    assert WordLM.from_dict(lm.to_dict()).score("turn", "left") == lm.score("turn", "left")


def test_decoder_validates():
    with pytest.raises(ParameterError, match=r"\[T, 29\]"):
        BeamSearchDecoder(A).decode(np.zeros((3, 5)))
    with pytest.raises(ParameterError, match="beam_width"):
        BeamSearchDecoder(A, beam_width=0)
    assert BeamSearchDecoder(A).decode(np.zeros((0, 29))) == ""


def test_keyword_spotting_finds_keywords_with_times():
    lp = make_logp("yes go on one stop", frames_per=3, lead=0)
    rows = spot_keywords(lp, ["go", "stop", "one", "on", "left"], A, threshold=0.6, frame_period=0.03)
    found = [(r["keyword"], r["start"]) for r in rows]
    # 'go' starts at char 4 (y e s _ g): frame 16
    assert ("go", round(16 * 0.03, 3)) in found
    assert ("stop", round(4 * 14 * 0.03, 3)) in found  # s is char 14
    assert [k for k, _ in found].count("on") == 1  # the 'on' inside 'one' is penalised
    assert "left" not in [k for k, _ in found]
    for r in rows:
        assert 0.6 <= r["score"] <= 1.0 and r["end"] > r["start"]


def test_keyword_scores_degrade_with_confusion():
    clean = keyword_scores(make_logp("stop"), ["stop"], A, threshold=0.0)["stop"][0][2]
    noisy = keyword_scores(make_logp("stop", confuse={"o": ("a", 0.7)}), ["stop"], A, threshold=0.0)["stop"][0][2]
    assert clean > 0.99 and noisy < clean
    with pytest.raises(ParameterError, match="no letters"):
        keyword_scores(make_logp("a"), ["123!"[3:]], A)
    with pytest.raises(ParameterError, match="threshold"):
        keyword_scores(make_logp("a"), ["a"], A, threshold=2)


def test_keyword_boundary_ignores_repeated_frames_of_the_same_character():
    """A character held for several frames is one symbol, not a letter after the keyword."""
    from speechlstm.kws import _neighbours

    #          g  o  o  _  _  sp sp l  e  f  t
    best = np.array([3, 4, 4, 0, 0, 1, 1, 5, 6, 7, 8])
    prev, nxt = _neighbours(best, 0)
    assert nxt[1] == 1 and nxt[2] == 1  # after the run of 'o' comes the space
    assert prev[7] == 1 and prev[1] == 3 and prev[2] == 3
    lp = make_logp("go left", frames_per=0, lead=0)
    lp = np.repeat(lp, 2, axis=0)  # every character held two frames
    rows = spot_keywords(lp, ["go", "left"], A, threshold=0.9)
    assert {r["keyword"] for r in rows} == {"go", "left"}
