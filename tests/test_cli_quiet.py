"""The `medcap` command line keeps TensorFlow's C++ log lines off stderr by
default, brings them back with `--verbose`, and never hides its own output."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from medcap import cli, tf_logs

#: What TensorFlow's C++ runtime prints, by any path (import, tf.data, XLA).
NOISE = re.compile(
    r"^[IWEF]\d{4} |Compiled cluster using XLA|local_rendezvous|NodeDef mentions attribute"
    r"|oneDNN custom operations|absl::InitializeLog|Unable to register cu",
    re.MULTILINE,
)


def _medcap(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process, as a user's shell would run it."""
    base = {
        k: v for k, v in os.environ.items() if k not in (tf_logs.LEVEL_ENV, tf_logs.VERBOSE_ENV)
    }
    return subprocess.run(
        [sys.executable, "-m", "medcap.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env=base,
    )


def _extract(tmp_path, *extra: str) -> list[str]:
    # tf.data map pipeline + tf.function on a random VGG16 at 32x32: TensorFlow's
    # import-time, runtime and (on a machine without a GPU driver) cuInit lines.
    return [
        "features", "extract", "--dataset", "medicat", "--synthetic-num", "10", "--weights", "none",
        "--image-size", "32", "32", "--batch-size", "4", "--split", "train", "--root", str(tmp_path / "data"),
        *extra,
    ]  # fmt: skip


def test_tensorflow_logs_are_hidden_by_default_and_our_output_is_kept(tmp_path):
    proc = _medcap(_extract(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not NOISE.search(proc.stderr), proc.stderr[-3000:]
    assert "train: 7 x 4096" in proc.stdout  # the printed result
    assert "WARNING: vgg16 is randomly initialised" in proc.stdout  # our printed warning
    assert "train features" in proc.stderr  # the tqdm progress bar


def test_verbose_after_the_command_brings_tensorflow_logs_back(tmp_path):
    proc = _medcap([*_extract(tmp_path), "--verbose"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # TensorFlow logs the oneDNN notice (INFO) while loading on x86 Linux, and
    # absl's "before absl::InitializeLog()" banner with it.
    assert NOISE.search(proc.stderr), proc.stderr[-3000:]
    assert "train: 7 x 4096" in proc.stdout


def test_help_imports_no_tensorflow():
    code = (
        "import sys; from medcap import cli\n"
        "try:\n    cli.main(['--verbose', 'caption', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_verbose_flag_is_parsed_before_and_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["--verbose", "evaluate", "--workdir", "w"]).verbose is True
    assert parser.parse_args(["evaluate", "--workdir", "w", "--verbose"]).verbose is True
    assert parser.parse_args(["data", "--verbose", "synth", "mimic"]).verbose is True
    assert not getattr(parser.parse_args(["evaluate", "--workdir", "w"]), "verbose", False)


def test_an_explicit_level_wins_and_verbose_sets_nothing(monkeypatch):
    monkeypatch.delenv(tf_logs.LEVEL_ENV, raising=False)
    monkeypatch.delenv(tf_logs.VERBOSE_ENV, raising=False)
    tf_logs.configure()
    assert os.environ[tf_logs.LEVEL_ENV] == "3"

    monkeypatch.setenv(tf_logs.LEVEL_ENV, "0")
    tf_logs.configure()
    assert os.environ[tf_logs.LEVEL_ENV] == "0"

    monkeypatch.delenv(tf_logs.LEVEL_ENV)
    tf_logs.configure(verbose=True)
    assert tf_logs.LEVEL_ENV not in os.environ
    monkeypatch.setenv(tf_logs.VERBOSE_ENV, "1")
    tf_logs.configure()
    assert tf_logs.LEVEL_ENV not in os.environ


LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796231665.929661    4306 port.cc:153] oneDNN custom operations are on.",
    "W0501 12:00:00.000001    4306 local_rendezvous.cc:404] Local rendezvous is aborting",
    "E0000 00:00:1796231671.699440    4306 node_def_util.cc:682] NodeDef mentions attribute",
    "2024-05-01 12:00:00.000000: W tensorflow/core/framework/op_kernel.cc:42] old format",
    "F0000 00:00:1796231671.699440    4306 check.cc:1] a fatal error stays",
    "/x.py:3: UserWarning: ours",
    "Traceback (most recent call last):",
]


@pytest.mark.parametrize(
    "level, kept",
    [(0, set(range(8))), (1, {2, 3, 4, 5, 6, 7}), (2, {3, 5, 6, 7}), (3, {5, 6, 7})],
)
def test_filter_applies_the_level_to_log_lines_only(level, kept):
    data = ("\n".join(LINES) + "\nbar:  50%|#####\rbar: 100%|##########\n").encode()
    out = tf_logs.filter_log_lines(data, level).decode()
    assert [i for i, line in enumerate(LINES) if line in out] == sorted(kept)
    assert out.endswith("bar:  50%|#####\rbar: 100%|##########\n")


def test_filtered_stderr_replays_everything_else():
    # A fresh process: there sys.stderr writes to fd 2, as in the console script.
    code = (
        "import os, sys\n"
        "from medcap import tf_logs\n"
        "with tf_logs.filtered_stderr(3):\n"
        f"    os.write(2, b{(LINES[1] + chr(10) + 'from C' + chr(10))!r})\n"
        "    print('from Python', file=sys.stderr)\n"
        "    os.write(1, b'in block\\n')\n"
        "print('after', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "in block\n"
    assert proc.stderr == "from C\nfrom Python\nafter\n"


def test_import_hook_lives_only_inside_the_block(monkeypatch):
    monkeypatch.setenv(tf_logs.LEVEL_ENV, "3")
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in a fresh process
    before = list(sys.meta_path)
    with tf_logs.quiet_tensorflow_import():
        assert len(sys.meta_path) == len(before) + 1
    assert sys.meta_path == before
    with tf_logs.quiet_tensorflow_import(verbose=True):
        assert sys.meta_path == before


def test_a_fatal_line_and_abort_inside_the_captured_import_reach_the_terminal(tmp_path):
    """A FATAL log line followed by abort() inside `import tensorflow` (here a stand-in
    module that does just that) still reaches stderr, the INFO line before it stays
    hidden, and faulthandler's traceback of the abort is there too."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "tensorflow.py").write_text(
        "import os\n"
        f"os.write(2, {(LINES[1] + chr(10)).encode()!r})\n"
        "os.write(2, b'F0000 00:00:1796231671.699440    4306 cuda_dnn.cc:9] Check failed: boom\\n')\n"
        "os.write(2, b'*** Check failure stack trace: ***\\n')\n"
        "os.abort()\n"
    )
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(fake)!r})\n"
        "from medcap import tf_logs\n"
        "with tf_logs.quiet_tensorflow_import():\n"
        "    import tensorflow\n"
    )
    env = {**os.environ, tf_logs.LEVEL_ENV: "3"}
    env.pop(tf_logs.VERBOSE_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0  # aborted (SIGABRT)
    assert "F0000 00:00:1796231671.699440    4306 cuda_dnn.cc:9] Check failed: boom" in proc.stderr
    assert "*** Check failure stack trace: ***" in proc.stderr
    assert "Fatal Python error: Aborted" in proc.stderr  # faulthandler, written to the real stderr
    assert "oneDNN custom operations" not in proc.stderr  # still filtered at level 3


def test_the_gpu_libraries_warning_is_never_hidden():
    line = (
        "W0000 00:00:1796231665.929661    4306 gpu_device.cc:2344] Cannot dlopen some GPU libraries. "
        "Please make sure the missing libraries mentioned above are installed properly. "
        "Skipping registering GPU devices..."
    )
    assert not tf_logs.is_hidden(line, 3)
    assert tf_logs.filter_log_lines((LINES[1] + "\n" + line + "\n").encode(), 3).decode() == line + "\n"
