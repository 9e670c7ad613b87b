"""Labs 11-4 (time series), 11-5 (seq2seq) and 11-6 (packed sequences): recipes and scripts."""

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as rnn_utils
from conftest import load_script

from jaxnn.data.macro import load_macrodata
from jaxnn.interop.torch import rnn_params_to_torch
from jaxnn.labs import packed, seq2seq, timeseries
from jaxnn.testing import assert_close


def test_seq2seq_translates_all_four_pairs_exactly_at_the_default_seed(capsys, no_compilation_cache, tmp_path):
    result = load_script("seq2seq").main(["--workdir", str(tmp_path)])
    assert result.exact == [True, True, True, True], result.translations
    assert result.losses[-100:].mean() < 0.05 < result.losses[:100].mean()
    out = capsys.readouterr().out
    pairs = seq2seq.prepare()[0]
    assert len(pairs) == 4
    for source, target in pairs:  # each source, its target and the translation, as the lab prints them
        assert f"> {source}\n= {target}\n< {target} <EOS>\n" in out, (source, target)
    assert out.rstrip().endswith("4 of 4 translations exact")


def test_seq2seq_one_pair_per_step_draws_one_pair_each_step_from_the_step_number(tmp_path):
    """The lab's recipe: each step trains on one pair, drawn from (seed, step), so a run cut into more epochs (or
    resumed) trains on the same pairs."""
    one = seq2seq.train_and_evaluate(seq2seq.Config(iterations=12, epochs=1, one_pair_per_step=True), tmp_path / "a")
    three = seq2seq.train_and_evaluate(seq2seq.Config(iterations=12, epochs=3, one_pair_per_step=True), tmp_path / "b")
    np.testing.assert_array_equal(one.losses, three.losses)
    all_pairs = seq2seq.train_and_evaluate(seq2seq.Config(iterations=12, epochs=1), tmp_path / "c")
    assert one.losses.shape == (12,) and not np.array_equal(one.losses, all_pairs.losses)
    assert len(set(np.round(one.losses, 4))) > 1 and np.all(np.isfinite(one.losses))


def test_seq2seq_vocabularies_are_the_labs():
    pairs, source, target, arrays = seq2seq.prepare()
    assert source.words[:5] == ("<SOS>", "<EOS>", "i", "feel", "hungry.")
    assert len(source) == 17 and len(target) == 13
    assert source.encode("pytorch is very easy.") == [5, 6, 7, 8, 1]
    np.testing.assert_array_equal(arrays["source_lengths"], [4, 5, 8, 7])
    np.testing.assert_array_equal(arrays["decoder_inputs"][:, 0], 0)
    with pytest.raises(ValueError, match=r"words \['hello'\] of 'hello' are not in the vocabulary"):
        source.encode("hello")


def test_packed_lab_matches_torch_utilities_and_packed_rnn():
    lab = packed.run()
    assert lab.chars[0] == "<pad>" and len(lab.chars) == 19 and list(lab.chars[1:]) == sorted(lab.chars[1:])
    t_padded = rnn_utils.pad_sequence([torch.tensor(i) for i in lab.indices], batch_first=True)
    np.testing.assert_array_equal(lab.padded, t_padded.numpy())
    t_packed = rnn_utils.pack_padded_sequence(t_padded, torch.tensor(lab.lengths), True, enforce_sorted=False)
    np.testing.assert_array_equal(lab.packed.data, t_packed.data.numpy())
    np.testing.assert_array_equal(lab.packed.sorted_indices, t_packed.sorted_indices.numpy())
    # PyTorch's RNN(19, 30) with the lab's weights, on the packed batch and on the padded one
    trnn = torch.nn.RNN(len(lab.chars), 30, batch_first=True)
    trnn.load_state_dict(rnn_params_to_torch(lab.params))
    onehot = torch.nn.functional.one_hot(t_padded, len(lab.chars)).float()
    with torch.no_grad():
        packed_in = rnn_utils.pack_padded_sequence(onehot, torch.tensor(lab.lengths), True, enforce_sorted=False)
        t_out, t_h = trnn(packed_in)
        t_out, t_lengths = rnn_utils.pad_packed_sequence(t_out, batch_first=True, total_length=onehot.shape[1])
        t_out_padded, t_h_padded = trnn(onehot)
    np.testing.assert_array_equal(t_lengths.numpy(), lab.lengths)
    assert_close(lab.output_packed, t_out, what="output with lengths (PyTorch: packed)")
    assert_close(lab.h_packed, t_h, what="h_n with lengths (PyTorch: packed)")
    assert_close(lab.output_padded, t_out_padded, what="output without lengths")
    assert_close(lab.h_padded, t_h_padded, what="h_n without lengths")
    # Outputs past each length are zero with lengths, and not without; inside each word they agree.
    for b, n in enumerate(lab.lengths):
        assert not lab.output_packed[b, n:].any()
        assert n == lab.padded.shape[1] or np.abs(lab.output_padded[b, n:]).max() > 0.1
        np.testing.assert_array_equal(lab.output_packed[b, :n], lab.output_padded[b, :n])


def test_timeseries_scales_with_the_training_split_only_and_learns(tmp_path):
    config = timeseries.Config()
    names, values = load_macrodata(columns=timeseries.FEATURES)
    assert values.shape == (203, 5) and names[-1] == "realgdp"
    scaler, train_x, train_y, test_x, test_y = timeseries.split(values, config)
    train_size = int(203 * 0.7)
    np.testing.assert_allclose(scaler.lo, values[:train_size].min(axis=0))
    assert train_x.shape == (train_size - 7, 7, 5) and test_x.shape == (203 - train_size, 7, 5)
    assert test_y.max() > 1.0  # the test split runs past the training range, as real GDP does
    np.testing.assert_allclose(train_x[1, -1], train_x[2, -2])  # step-1 windows
    result = timeseries.train_and_evaluate(config, tmp_path)
    losses = [r["train_loss"] for r in result.records]  # each epoch's mean
    assert len(losses) == config.epochs and losses[-1] < 0.02 * losses[0]
    assert result.records[-1]["test_loss"] < result.records[0]["test_loss"]
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.jsonl", "curves.png", "params.npz", "predictions.png"}
    assert result.train_rmse < 150 and result.test_rmse < 1000
    assert result.plot_path is not None and result.plot_path.stat().st_size > 10_000
    assert_close(result.test_targets, values[train_size:, -1], rtol=1e-5)


def test_the_conv_gru_time_series_recipe_learns_on_the_labs_windows(tmp_path):
    """The recipe added as README's "Adding a lab" describes: the lab's data and training, a Conv1d + GRU model."""
    from jaxnn.labs import timeseries_conv

    config = timeseries_conv.Config(iterations=200, epochs=2)
    result = timeseries_conv.train_and_evaluate(config, tmp_path)
    assert result.records[-1]["train_loss"] < 0.2 * result.records[0]["train_loss"]
    assert result.test_predictions.shape == result.test_targets.shape == (203 - int(203 * 0.7),)
    params = result.state.params
    assert params["conv"]["kernel"].shape == (3, 5, 16) and params["rnn"]["weight_hh_l0"].shape == (30, 10)
    assert np.isfinite(result.test_rmse) and result.plot_path.is_file()


@pytest.mark.parametrize(
    "script, expect",
    [
        # the README's numbers, to the 0.1 printed
        ("timeseries", "train RMSE: 62.2, test RMSE: 391.5 (billions of chained 2005 dollars"),
        (
            "packed_sequence",
            "pad_packed_sequence(packed, batch_first=True) gives back the padded batch and lengths: True",
        ),
    ],
)
def test_lab_scripts_print_what_the_readme_says(script, expect, capsys, no_compilation_cache, tmp_path):
    load_script(script).main(["--workdir", str(tmp_path)] if script == "timeseries" else [])
    assert expect in capsys.readouterr().out


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("seq2seq", ["--iterations", "0"], "--iterations must be an int >= 1, got 0"),
        ("seq2seq", ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        ("timeseries", ["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
        ("timeseries", ["--iterations", "7"], "--iterations must be a multiple of epochs 5, got 7"),
        ("timeseries", ["--checkpoint_every", "3"], "--checkpoint_every must be 0 (checkpoints come at epoch ends)"),
    ],
)
def test_new_lab_scripts_reject_bad_flags(script, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        load_script(script).main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
