"""speechlstm._kernel_cache: Numba's cache goes stale when a kernel's callee file changes; drop_stale fixes it."""
import os
import subprocess
import sys
import textwrap

from speechlstm._kernel_cache import drop_stale


def _touch(path, mtime):
    path.write_text(path.read_text() if path.exists() else "")
    os.utime(path, (mtime, mtime))


def test_removes_only_cache_files_older_than_newest_source(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "__pycache__").mkdir()
    _touch(tmp_path / "a.py", 1000)
    _touch(tmp_path / "b.py", 2000)
    old = [tmp_path / "__pycache__" / n for n in ("k.f-1.py3.nbi", "k.f-1.py3.0.nbc")]
    new = [tmp_path / "__pycache__" / n for n in ("k.g-2.py3.nbi", "k.g-2.py3.0.nbc")]
    other = tmp_path / "__pycache__" / "a.cpython-3.pyc"
    for p in old:
        _touch(p, 1500)
    for p in new:
        _touch(p, 2500)
    _touch(other, 1)  # old, but Python's own bytecode
    assert sorted(drop_stale(tmp_path)) == sorted(old)
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in new) and other.exists()
    assert drop_stale(tmp_path) == []


def test_leaves_a_user_chosen_cache_dir_alone(tmp_path, monkeypatch):
    (tmp_path / "__pycache__").mkdir()
    _touch(tmp_path / "a.py", 2000)
    stale = tmp_path / "__pycache__" / "k.f-1.py3.nbi"
    _touch(stale, 1000)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert drop_stale(tmp_path) == [] and stale.exists()


def test_no_cache_folder_is_fine(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    _touch(tmp_path / "a.py", 2000)
    assert drop_stale(tmp_path) == []


def test_an_edited_callee_is_recompiled(tmp_path):
    """The hazard itself: a cached kernel inlines a helper from another file; after the helper's
    file changes, Numba alone still runs the old code, and drop_stale makes it recompile."""
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kern.py").write_text(textwrap.dedent("""
        from numba import njit
        from .helper import value

        @njit(cache=True)
        def kernel():
            return value()
    """))
    helper = pkg / "helper.py"

    def run(drop):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import pathlib\n"
                "from speechlstm._kernel_cache import drop_stale\n"
                + ("drop_stale(pathlib.Path(sys.argv[1]) / 'pkg')\n" if drop else "")
                + "from pkg.kern import kernel; print(kernel())")
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             env=env, check=True)
        return int(out.stdout.split()[-1])

    helper.write_text("from numba import njit\n\n@njit\ndef value():\n    return 1\n")
    os.utime(helper, (1000, 1000))
    os.utime(pkg / "kern.py", (1000, 1000))
    assert run(drop=False) == 1
    assert list((pkg / "__pycache__").glob("*.nbi"))  # the kernel was cached
    helper.write_text("from numba import njit\n\n@njit\ndef value():\n    return 2\n")
    os.utime(helper, (2000, 2000))  # the edit comes after the kernel was cached (at 1500)
    for f in (pkg / "__pycache__").glob("*.nb[ic]"):
        os.utime(f, (1500, 1500))
    assert run(drop=False) == 1  # Numba alone: the stale kernel
    assert run(drop=True) == 2
