import pytest

from speechlstm import ParameterError
from speechlstm.alphabet import Alphabet, normalize_text


@pytest.mark.parametrize("raw,norm", [
    ("Hello, World!", "hello world"),
    ("Call 911 now", "call nine one one now"),
    ("7", "seven"),
    ("Don't stop-go", "don't stop go"),
    ("  'quoted'  text ", "quoted text"),
    ("Café  NAÏVE", "cafe naive"),
    ("rock’n’roll", "rock'n'roll"),
    ("a1b", "a one b"),
    ("!!!", ""),
])
def test_normalize(raw, norm):
    assert normalize_text(raw) == norm


def test_alphabet_round_trip():
    a = Alphabet()
    assert len(a) == 29 and a.labels[0] == "<b>" and a.labels[1] == " " and a.labels[2] == "'"
    ids = a.encode("Go 2 left!")
    assert ids.min() >= 1
    assert a.decode(ids) == "go two left"
    assert Alphabet.from_list(a.to_list()) == a
    with pytest.raises(ParameterError, match="not in"):
        Alphabet("ab").encode("abc")
    with pytest.raises(ParameterError, match="unique"):
        Alphabet("aa")
