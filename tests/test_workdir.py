"""A workdir never loses a result: a rerun that fails (divergence, a bad logdir, Ctrl-C) leaves the previous run's
files byte-identical, a run killed outright leaves them aside for the next one, a user's own files survive every run,
a resume never rewrites intact metric lines and leaves a completed run alone, and the logdir is the run's own; the
predictions.png a run leaves shows every image."""

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxnn import report, workdir
from jaxnn.labs import mnist as mnist_lab
from jaxnn.train import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[1]
MINE = ("mine.txt", "checkpoints/notes.txt", "tensorboard/mine.txt")  # a user's files inside the workdir


def _config(data_dir, **changes):
    base = mnist_lab.Config(
        epochs=2,  # two: curves.png is written from two epochs on
        batch_size=50,
        train_subset=200,
        test_subset=200,
        data_dir=str(data_dir),
        progress=False,
        checkpoints=False,
    )
    return dataclasses.replace(base, **changes)


def _snapshot(*folders):
    """Every file under ``folders`` (the lock aside) with its bytes."""
    return {
        str(p): p.read_bytes()
        for folder in folders
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
        if p.name != workdir.LOCK_FILE
    }


def _add_my_files(path):
    for name in MINE:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"my own {name}\n")


@pytest.mark.parametrize("checkpoints", [False, True])
def test_a_failing_rerun_leaves_the_previous_result_byte_identical(checkpoints, mnist_data_dir, tmp_path):
    run = tmp_path / "run"
    mnist_lab.train_and_evaluate(_config(mnist_data_dir, checkpoints=checkpoints), run)
    _add_my_files(run)
    before = _snapshot(run)
    assert {"run.json", "metrics.jsonl", "params.npz", "curves.png"} <= {Path(p).name for p in before}
    overwrite = {"overwrite": checkpoints}  # a workdir with checkpoints is replaced only on request
    with pytest.raises(NonFiniteLossError):  # diverges in its first epoch
        mnist_lab.train_and_evaluate(_config(mnist_data_dir, learning_rate=1e30, seed=1, **overwrite), run)
    assert _snapshot(run) == before
    (tmp_path / "a_file").write_text("not a folder\n")
    with pytest.raises(OSError):  # the logdir cannot be made
        mnist_lab.train_and_evaluate(_config(mnist_data_dir, logdir=str(tmp_path / "a_file" / "tb"), **overwrite), run)
    assert _snapshot(run) == before
    # A run that succeeds replaces the previous run's files, and only those.
    mnist_lab.train_and_evaluate(_config(mnist_data_dir, seed=1, **overwrite), run)
    after = _snapshot(run)
    for name in MINE:
        assert after[str(run / name)] == before[str(run / name)]
    assert after[str(run / "params.npz")] != before[str(run / "params.npz")]
    assert not (run / workdir.PREVIOUS).exists()


def _claim_and_die(path, how):
    """A run in a child process that writes its files, then raises or is killed outright."""
    code = f"""
import os, sys
from pathlib import Path
from jaxnn import workdir
path = Path({str(path)!r})
with workdir.claim(path, {{"run": "new"}}, overwrite=True):
    (path / "metrics.jsonl").write_text("new\\n")
    (path / "checkpoints" / "9").mkdir(parents=True)
    {"os._exit(9)" if how == "kill" else "raise KeyboardInterrupt"}
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_a_run_killed_outright_leaves_the_previous_result_aside_for_the_next(tmp_path):
    with workdir.claim(tmp_path, {"run": "old"}):
        (tmp_path / "metrics.jsonl").write_text("old\n")
        (tmp_path / "params.npz").write_bytes(b"old params")
    _add_my_files(tmp_path)
    before = _snapshot(tmp_path)
    assert _claim_and_die(tmp_path, "interrupt").returncode != 0  # Ctrl-C: put back at once
    assert _snapshot(tmp_path) == before and not (tmp_path / workdir.PREVIOUS).exists()
    assert _claim_and_die(tmp_path, "kill").returncode == 9  # SIGKILL-like: no chance to put anything back
    aside = tmp_path / workdir.PREVIOUS
    assert sorted(p.name for p in aside.iterdir()) == ["0-run.json", "1-metrics.jsonl", "2-params.npz", "manifest.json"]
    assert (tmp_path / "metrics.jsonl").read_text() == "new\n"
    # The next run that fails drops the killed run's files and puts the last complete result back.
    with pytest.raises(RuntimeError, match="fails"), workdir.claim(tmp_path, {"run": "next"}, overwrite=True):
        raise RuntimeError("fails")
    assert _snapshot(tmp_path) == before and not aside.exists()


def test_a_resume_keeps_intact_lines_reports_a_damaged_one_and_leaves_a_complete_run_alone(mnist_data_dir, tmp_path):
    mnist_lab.train_and_evaluate(_config(mnist_data_dir, checkpoints=True), tmp_path)
    before = _snapshot(tmp_path)
    stamps = {p: os.stat(p).st_mtime_ns for p in before}
    result = mnist_lab.train_and_evaluate(_config(mnist_data_dir, checkpoints=True, resume=True), tmp_path)
    assert _snapshot(tmp_path) == before  # a complete run: nothing rewritten, not even the same bytes
    assert {p: os.stat(p).st_mtime_ns for p in before} == stamps
    assert result.curves_path == tmp_path / "curves.png"
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(b'{"epoch": 1, "train_lo\n' + metrics.read_bytes())  # a damaged first line
    damaged = metrics.read_bytes()
    with pytest.raises(ValueError, match=rf"{metrics} line 1 is damaged .*repair or remove that line"):
        mnist_lab.train_and_evaluate(_config(mnist_data_dir, checkpoints=True, resume=True), tmp_path)
    assert metrics.read_bytes() == damaged
    # Valid JSON that is not this run's record of that epoch: refused by line, the file left as it is.
    record = before[str(metrics)]
    appended = record.count(b"\n") + 1  # the line after the last record
    for text, number in ((record + b"{}\n", appended), (record.replace(b'"epoch": 1', b'"epoch": 2'), 1)):
        metrics.write_bytes(text)
        with pytest.raises(ValueError, match=rf"{metrics} line {number} is not the record of epoch {number} of this"):
            mnist_lab.train_and_evaluate(_config(mnist_data_dir, checkpoints=True, resume=True), tmp_path)
        assert metrics.read_bytes() == text


def test_keep_metrics_cuts_after_the_kept_lines_and_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "train_loss": 1.0 / e}) + "\n" for e in (1, 2, 3)]
    path.write_text("".join(lines) + '{"epoch": 4, "tra')  # killed while writing epoch 4
    assert report.read_metrics(path) == [json.loads(line) for line in lines]
    assert report.keep_metrics(path, lambda r: r["epoch"] <= 2) == [json.loads(line) for line in lines[:2]]
    assert path.read_text() == "".join(lines[:2])
    path.write_text(lines[0] + "[1, 2]\n" + lines[1])
    with pytest.raises(ValueError, match="line 2 is damaged"):
        report.keep_metrics(path, lambda r: True)


def test_an_overwrite_run_starts_a_fresh_logdir_and_keeps_other_files_there(mnist_data_dir, tmp_path):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    (logdir / "notes.txt").write_text("mine\n")
    (logdir / "events.out.tfevents.1.host.jaxnn-another").write_bytes(b"another workdir's run")
    for seed in (0, 1):
        mnist_lab.train_and_evaluate(_config(mnist_data_dir, logdir=str(logdir), seed=seed), tmp_path / "run")
    ours = [p for p in logdir.iterdir() if p.name.endswith(workdir.event_suffix(tmp_path / "run"))]
    assert len(ours) == 1  # the second run's alone: TensorBoard shows one run, not two at the same steps
    assert sorted(p.name for p in logdir.iterdir() if p not in ours) == [
        "events.out.tfevents.1.host.jaxnn-another",
        "notes.txt",
    ]
    alone = tmp_path / "ours"
    alone.mkdir()
    (alone / ours[0].name).write_bytes(ours[0].read_bytes())
    assert [step for step, _ in report.read_scalars(alone)["train/loss"]] == [1, 2]


@pytest.mark.parametrize("content", ["{}", "[1, 2]", '{"config": ', "\x00\xff"])
def test_a_damaged_run_json_is_one_line_on_resume(content, tmp_path):
    (tmp_path / workdir.RUN_FILE).write_text(content)
    with pytest.raises(ValueError, match=r"run\.json is damaged .*resume refused") as error:
        with workdir.claim(tmp_path, {"run": 1}, resume=True):
            pass
    assert "\n" not in str(error.value)
    with workdir.claim(tmp_path, {"run": 1}):  # a fresh run replaces it
        pass
    assert json.loads((tmp_path / workdir.RUN_FILE).read_text())["config"] == {"run": 1}


def test_a_rerun_that_meets_an_unreadable_or_oversized_image_leaves_the_previous_result(tmp_path):
    import numpy as np
    import PIL.Image

    from jaxnn.labs import image_folder

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            pixels = (rng.random((64, 128, 3)) * 255).astype(np.uint8)
            PIL.Image.fromarray(pixels).save(root / label / f"{i}.png")
    config = image_folder.Config(root=str(root), epochs=1, batch_size=4, progress=False, checkpoints=False)
    run = tmp_path / "run"
    image_folder.train_and_evaluate(config, run)
    before = _snapshot(run)
    (root / "dog" / "9.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*9\.png"):
        image_folder.train_and_evaluate(config, run)
    assert _snapshot(run) == before
    PIL.Image.new("L", (14000, 14000)).save(root / "dog" / "9.png")  # over PIL's limit: a decompression bomb
    with pytest.raises(ValueError, match=r"cannot read image .*9\.png: Image size \(196000000 pixels\) exceeds"):
        image_folder.train_and_evaluate(config, run)
    assert _snapshot(run) == before


def _old_result(path):
    with workdir.claim(path, {"run": "old"}):
        (path / "metrics.jsonl").write_text("old\n")
        (path / "params.npz").write_bytes(b"old params")
    return _snapshot(path)


def test_a_copied_workdir_puts_its_previous_result_back_into_the_copy(tmp_path):
    original = tmp_path / "original"
    _old_result(original)
    assert _claim_and_die(original, "kill").returncode == 9  # the old result aside, with its manifest
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = _snapshot(original)
    with pytest.raises(RuntimeError, match="fails"), workdir.claim(copy, {"run": "in the copy"}, overwrite=True):
        (copy / "params.npz").write_bytes(b"the copy's failed run")
        raise RuntimeError("fails")
    assert _snapshot(original) == before  # nothing moved into the original
    assert (copy / "params.npz").read_bytes() == b"old params" and not (copy / workdir.PREVIOUS).exists()


def test_a_move_aside_that_fails_half_way_leaves_the_previous_result_in_place(tmp_path, monkeypatch):
    before = _old_result(tmp_path)
    real_move = shutil.move

    def full_disk(src, dst):
        if Path(src).name == "params.npz":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_move(src, dst)

    monkeypatch.setattr(workdir.shutil, "move", full_disk)
    with pytest.raises(OSError, match="No space left"), workdir.claim(tmp_path, {"run": "new"}):
        pass
    monkeypatch.setattr(workdir.shutil, "move", real_move)
    assert _snapshot(tmp_path) == before and not (tmp_path / workdir.PREVIOUS).exists()
    # and the next run that succeeds sets the whole previous result aside, then replaces it
    with workdir.claim(tmp_path, {"run": "next"}):
        assert not (tmp_path / "params.npz").exists() and (tmp_path / workdir.PREVIOUS / "manifest.json").is_file()


@pytest.mark.parametrize("manifest", ["", "{not json", "[1, 2]"])
def test_a_damaged_move_aside_record_does_not_hide_the_runs_own_error(manifest, tmp_path, caplog):
    _old_result(tmp_path)
    with pytest.raises(RuntimeError, match="the run's own error"), workdir.claim(tmp_path, {"run": "new"}):
        (tmp_path / workdir.PREVIOUS / "manifest.json").write_text(manifest)
        raise RuntimeError("the run's own error")
    assert "could not be put back" in caplog.text and "they are still there" in caplog.text
    assert (tmp_path / workdir.PREVIOUS / "2-params.npz").read_bytes() == b"old params"  # nothing lost


def test_a_resume_after_the_data_changed_is_refused_naming_it(tmp_path):
    """The run's identity holds the data's content (the image folder's names and sizes), not only its path: an image
    added to --root would otherwise resume with another epoch length."""
    import numpy as np
    import PIL.Image

    from jaxnn.labs import image_folder

    root = tmp_path / "images"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            PIL.Image.fromarray(np.full((64, 128, 3), 40 * i, np.uint8)).save(root / label / f"{i}.png")
    config = image_folder.Config(root=str(root), epochs=1, batch_size=4, progress=False)
    image_folder.train_and_evaluate(config, tmp_path / "run")
    PIL.Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(root / "dog" / "4.png")
    resume = dataclasses.replace(config, resume=True)
    with pytest.raises(ValueError, match=r"resume refused: workdir .* holds a run with another data: "):
        image_folder.train_and_evaluate(resume, tmp_path / "run")
    (root / "dog" / "4.png").unlink()
    image_folder.train_and_evaluate(resume, tmp_path / "run")  # the same images again: it resumes


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_plot_predictions_draws_every_image_and_refuses_mismatched_inputs(channels, tmp_path):
    """One mosaic of every image (grey, the first of two channels, RGB), each under its predicted (true) label."""
    from PIL import Image

    images = np.random.default_rng(channels).random((11, 8, 6, channels)).astype(np.float32)
    labels, predictions = np.arange(11) % 3, np.arange(11) % 2
    path = report.plot_predictions(images, labels, predictions, tmp_path / "p.png", ["a", "b", "c"], columns=4)
    with Image.open(path) as png:
        pixels = np.asarray(png.convert("L"))
    assert png.size == (640, 680) and pixels.std() > 10  # 1.6 x 4 by 2.1 x 3 + 0.5 inches at 100 dpi, not blank
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, C\) with N labels and N predictions"):
        report.plot_predictions(images, labels[:5], predictions, tmp_path / "q.png")
