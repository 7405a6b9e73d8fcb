"""Keeps TensorFlow's C++ log lines off the `medcap` command line.

TensorFlow's C++ runtime logs to file descriptor 2 in glog/absl format
(`I0000 00:00:1712.. 123 port.cc:153] oneDNN custom operations are on...`,
`W... local_rendezvous.cc...] Local rendezvous is aborting with status:
OUT_OF_RANGE: End of sequence`, `E... node_def_util.cc...] NodeDef mentions
attribute use_unbounded_threadpool ...`, `E... cuda_platform.cc...] failed
call to cuInit`, `I... device_compiler.h...] Compiled cluster using XLA!`).
None of them is actionable for someone captioning an image, and they bury
medcap's own output. Before a command runs, `medcap.cli.main` does two things:

* `configure()` sets `TF_CPP_MIN_LOG_LEVEL=3` when the variable is unset. TensorFlow
  reads it when it first logs, which is after `medcap.cli` has started,
  because commands import TensorFlow lazily. Level 3 is needed, not 2: the
  NodeDef and cuInit lines are logged at ERROR severity. Level 3 hides C++
  ERROR log lines only; a failing op still raises its Python exception
  (`tf.errors.*`) with the full status message, so real errors still reach
  the user, as do FATAL lines.
* TensorFlow's shared libraries log a few lines from their static
  initialisers, before the variable is read, so no environment setting
  silences them: the oneDNN notice, "Could not find cuda drivers", on GPU
  builds the "Unable to register cuDNN/cuFFT/cuBLAS factory" lines, and
  absl's "WARNING: All log messages before absl::InitializeLog() is called
  are written to STDERR". Inside `quiet_tensorflow_import()`, for the
  duration of the first `import tensorflow` only, file descriptor 2 goes
  through a forwarding process that drops, line by line as they arrive, the
  log lines the effective level would have hidden (`filtered_stderr`).
  Everything else written meanwhile (Python warnings, tracebacks, FATAL
  lines) reaches the terminal, even when the process aborts inside the
  import. fd 2 is left alone before and after it, so tqdm bars, warnings and
  errors are never held back. TensorFlow's "Cannot dlopen some GPU
  libraries ... Skipping registering GPU devices" warning is never hidden
  (`NEVER_HIDDEN`): it is the one line that says a GPU will not be used.

What is *not* changed: `TF_ENABLE_ONEDNN_OPTS` (turning oneDNN off would
change numerics just to drop its notice), Python-side loggers (`tf.get_logger()`,
absl, Keras) and `warnings.warn` output, which are warnings meant for users.

Getting the logs back: `medcap --verbose ...` or `MEDCAP_VERBOSE=1` sets and
filters nothing, so TensorFlow logs exactly as it would by itself. An explicit
`TF_CPP_MIN_LOG_LEVEL` always wins over the default: `TF_CPP_MIN_LOG_LEVEL=0`
shows everything, and e.g. `=1` hides only INFO lines, including those printed
at import. Should the process die inside `import tensorflow` (a FATAL log
followed by abort), the forwarder still delivers every line written before,
and Python's faulthandler prints where it happened.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib.abc
import importlib.util
import os
import re
import sys
from collections.abc import Iterator

#: Set to 1 (or true/yes/on) to leave TensorFlow's logging alone.
VERBOSE_ENV = "MEDCAP_VERBOSE"
#: TensorFlow's C++ minimum log level: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR.
LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: Our default for LEVEL_ENV (see the module docstring for why not 2).
DEFAULT_LEVEL = "3"

_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
#: absl (`I0501 12:00:00.000000    4242 port.cc:153] ...`; before absl knows
#: the time zone, `I0000 00:00:1712345678.123456 ...`) and the older TSL
#: format (`2024-05-01 12:00:00.000000: I tensorflow/...cc:42] ...`).
_LOG_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl>[IWEF]) )\S+:\d+\] "
)
#: Lines shown at every level: the one that tells a user TensorFlow will not use
#: their GPU ("Cannot dlopen some GPU libraries ... Skipping registering GPU devices").
NEVER_HIDDEN = ("Cannot dlopen some GPU libraries",)
_ABSL_BANNER = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)


def verbose_requested(flag: bool = False) -> bool:
    """`--verbose` or MEDCAP_VERBOSE set to a true value."""
    return flag or os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def min_log_level() -> int:
    """The level TensorFlow will apply (a malformed value counts as 0, as in TF)."""
    try:
        return max(0, min(3, int(os.environ.get(LEVEL_ENV, "0"))))
    except ValueError:
        return 0


def is_hidden(line: str, level: int) -> bool:
    """Whether TensorFlow itself would have dropped this stderr line at `level`
    (FATAL lines are never hidden)."""
    if level <= 0:
        return False
    if any(text in line for text in NEVER_HIDDEN):
        return False
    if line.rstrip("\r\n") == _ABSL_BANNER:
        return True
    match = _LOG_LINE.match(line)
    if not match:
        return False
    severity = _SEVERITY[match.group("absl") or match.group("tsl")]
    return severity < min(level, _SEVERITY["F"])


def filter_log_lines(data: bytes, level: int) -> bytes:
    """`data` without the lines that `is_hidden` at `level`; all other bytes,
    including carriage-return progress updates, are kept as they are."""
    kept = [
        line
        for line in data.split(b"\n")
        if not (line and is_hidden(line.decode("utf-8", "replace"), level))
    ]
    return b"\n".join(kept)


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """While the block runs, file descriptor 2 (C++ and Python writes alike)
    goes into a pipe read by a small forwarding process, which writes each line
    to the real stderr as it arrives unless `is_hidden` at `level`.

    A separate process, not a thread or a file replayed afterwards, so that
    nothing is lost when this process dies inside the block: a FATAL log line
    followed by abort() reaches the terminal, because the forwarder reads until
    the pipe closes, which the kernel does when this process dies. faulthandler
    (when we turn it on) writes to the real stderr directly. On a normal exit
    the block waits for the forwarder, so lines keep their order."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to protect
        yield
        return
    import subprocess

    own_faulthandler = not faulthandler.is_enabled()
    read_end, write_end = os.pipe()
    try:
        forwarder = subprocess.Popen(
            [sys.executable, "-c", f"from medcap.tf_logs import forward_lines; forward_lines({int(level)})"],
            stdin=read_end,
            stdout=saved,
            stderr=saved,
            close_fds=True,
        )
    except OSError:  # cannot start a process: leave stderr alone
        os.close(read_end)
        os.close(write_end)
        os.close(saved)
        yield
        return
    os.close(read_end)
    _flush_python_stderr()
    os.dup2(write_end, 2)
    os.close(write_end)
    if own_faulthandler:
        faulthandler.enable(file=saved)
    try:
        yield
    finally:
        _flush_python_stderr()
        os.dup2(saved, 2)  # closes the last write end: the forwarder sees the end
        if own_faulthandler:
            faulthandler.disable()
        forwarder.wait()
        os.close(saved)


def forward_lines(level: int) -> None:
    """The forwarding process of `filtered_stderr`: standard input to standard
    output, line by line as they arrive, without the lines `is_hidden` at
    `level`; a last line without a newline is forwarded at the end."""
    pending = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines:
            kept = [line for line in lines if not (line and is_hidden(line.decode("utf-8", "replace"), level))]
            if kept:
                _write_all(1, b"".join(line + b"\n" for line in kept))
    if pending and not is_hidden(pending.decode("utf-8", "replace"), level):
        _write_all(1, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """Runs the wrapped loader's `exec_module` inside `filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader, level: int):
        self._loader = loader
        self._level = level

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            with filtered_stderr(self._level):
                self._loader.exec_module(module)
        finally:
            # The module keeps its real loader (resources, reloads, inspection).
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _FirstTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the normal way and wraps its loader, once."""

    def __init__(self, level: int):
        self.level = level
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _FilteredLoader(spec.loader, self.level)
        return spec


def configure(verbose: bool = False) -> None:
    """Sets the TF_CPP_MIN_LOG_LEVEL default; see the module docstring.
    Harmless when TensorFlow is already imported (it then changes nothing
    TensorFlow has already read)."""
    if verbose_requested(verbose):
        return
    os.environ.setdefault(LEVEL_ENV, DEFAULT_LEVEL)


@contextlib.contextmanager
def quiet_tensorflow_import(verbose: bool = False) -> Iterator[None]:
    """While the block runs, a first `import tensorflow` (wherever it happens)
    has its static-initialiser log lines filtered at the effective level. The
    import hook is removed on exit, so nothing outlives the command."""
    level = min_log_level()
    if verbose_requested(verbose) or level == 0 or "tensorflow" in sys.modules:
        yield
        return
    finder = _FirstTensorFlowImport(level)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
