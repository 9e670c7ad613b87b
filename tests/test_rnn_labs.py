"""Lab 11: text data, the labs' targets, and 100 Adam steps that follow PyTorch's step by step."""

import copy
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import COMPILES, load_script

from jaxnn.data.text import Vocab, next_char_pair, sliding_windows, windows_to_text
from jaxnn.interop import torch_labs
from jaxnn.interop.torch import char_rnn_params_from_torch, char_rnn_params_to_torch
from jaxnn.labs import char
from jaxnn.labs.char import LONGSEQ, make_lab, run_lab
from jaxnn.models import CharRNN, generate


def one_hot(indices, depth):
    """The labs' np.eye(depth)[indices], float32."""
    return np.eye(depth, dtype=np.float32)[np.asarray(indices)]


def test_vocab_is_sorted_and_independent_of_hash_seed():
    outs = set()
    for seed in ("0", "1", "2"):
        code = (
            "from jaxnn.data.text import Vocab; from jaxnn.labs.char import LONGSEQ; "
            "print(''.join(Vocab.from_text(LONGSEQ).chars))"
        )
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
        outs.add(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
        )
    assert len(outs) == 1
    v = Vocab.from_text("hihello")
    assert v.chars == ("e", "h", "i", "l", "o")
    np.testing.assert_array_equal(v.encode("hello"), [1, 0, 3, 3, 4])
    assert v.decode(v.encode("hihello")) == "hihello"


def test_text_helpers():
    v = Vocab.from_text(LONGSEQ)
    x, y = sliding_windows(LONGSEQ, v, 10)
    assert x.shape == y.shape == (len(LONGSEQ) - 10, 10)
    assert v.decode(x[3]) == LONGSEQ[3:13] and v.decode(y[3]) == LONGSEQ[4:14]
    assert windows_to_text(y, v) == LONGSEQ[1:]
    x, y = next_char_pair(" if you want you", Vocab.from_text(" if you want you"))
    assert x.shape == (1, 15)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (
            lambda: Vocab.from_text("hello").encode("help"),
            r"characters \['p'\] of text 'help' are not in the vocabulary",
        ),
        (
            lambda: sliding_windows("hello", Vocab.from_text("hello"), 5),
            r"sequence_length 5 must be shorter than the text",
        ),
        (lambda: sliding_windows("hello", Vocab.from_text("hello"), 0), r"sequence_length must be a positive int"),
        (lambda: Vocab.from_text("hello").decode([0, 9]), r"indices must lie in \[0, 4\)"),
        (lambda: make_lab("hihi"), r"unknown lab 'hihi'"),
    ],
)
def test_text_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_labs_reach_their_targets_with_the_default_seed():
    for name in ("hihello", "charseq", "longseq"):
        lab = make_lab(name)
        run = run_lab(lab)
        assert lab.on_target(run.final), (name, run.final)
        assert run.losses[-1] < 0.5 * run.losses[0]
    assert make_lab("hihello").target == "ihello"
    assert make_lab("charseq").target == "if you want you"


def _torch_lab_run(tm, lab, iterations, dtype=torch.float32):
    """The lab's PyTorch loop, verbatim in substance: per iteration the loss and the predicted indices."""
    tm = copy.deepcopy(tm).to(dtype)
    X = torch.tensor(one_hot(lab.x, len(lab.vocab)), dtype=dtype)
    Y = torch.tensor(lab.y, dtype=torch.long)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(tm.parameters(), lab.learning_rate)
    losses, preds = [], []
    for _ in range(iterations):
        optimizer.zero_grad()
        outputs = tm(X)
        if isinstance(outputs, tuple):  # a bare RNN returns (outputs, h_n)
            outputs = outputs[0]
        loss = criterion(outputs.reshape(-1, len(lab.vocab)), Y.view(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        preds.append(outputs.argmax(dim=2).numpy())
    return np.array(losses), preds


def _lab_and_torch_model(name):
    lab = make_lab(name)
    torch.manual_seed(0)
    v = len(lab.vocab)
    if name == "hihello":
        tm = torch.nn.RNN(v, v, batch_first=True)
        return lab, tm, char_rnn_params_from_torch(tm.state_dict(), fc=None)
    tm = torch_labs.Net(v, v, 2)
    return lab, tm, char_rnn_params_from_torch(tm.state_dict())


def test_hihello_training_follows_pytorch_step_by_step_in_float32():
    lab, tm, params = _lab_and_torch_model("hihello")
    run = run_lab(lab, params=params)
    losses, preds = _torch_lab_run(tm, lab, lab.iterations)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-4)
    assert run.predictions == [lab.to_text(p) for p in preds]
    assert run.final == lab.to_text(preds[-1])


@pytest.mark.parametrize("name", ["hihello", "longseq"])
def test_training_follows_pytorch_step_by_step_in_float64(name):
    # longseq with Adam at lr 0.1 amplifies rounding about 1.5x per step: PyTorch's own float32 run leaves its
    # float64 run by 1e-2 (relative loss) within 100 steps, so no float32 implementation that rounds differently
    # can follow it to 1e-4. In float64 on both sides the two implementations must agree step by step.
    lab, tm, params = _lab_and_torch_model(name)
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        run = run_lab(lab, params=params64)
    assert run.losses.dtype == np.float64
    losses, preds = _torch_lab_run(tm, lab, lab.iterations, torch.float64)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-4)
    assert run.predictions == [lab.to_text(p) for p in preds]


def test_longseq_in_float32_ends_where_pytorch_ends():
    # Adam at lr 0.1 amplifies a rounding difference about 1.5x per step, so which few characters of the sentence
    # a float32 run gets wrong at the end depends on the CPU's instruction set (an AMD EPYC and an Intel Xeon
    # differ here, in PyTorch alike). The exactness claim is the float64 test above; in float32 both runs must
    # follow each other before amplification and end converged on the same sentence but for a few characters.
    lab, tm, params = _lab_and_torch_model("longseq")
    run = run_lab(lab, params=params)
    losses, preds = _torch_lab_run(tm, lab, lab.iterations)
    np.testing.assert_allclose(run.losses[:5], losses[:5], rtol=1e-4)  # before rounding has been amplified
    assert run.losses[-1] < 0.35 and losses[-1] < 0.35, (run.losses[-1], losses[-1])
    theirs = lab.to_text(preds[-1])
    assert len(run.final) == len(theirs)
    assert sum(a != b for a, b in zip(run.final, theirs, strict=True)) <= len(theirs) // 20, (run.final, theirs)


def test_char_rnn_round_trip_and_forward_equals_the_lab_net():
    torch.manual_seed(1)
    tm = torch_labs.Net(6, 6, 2, cell="lstm")
    params = char_rnn_params_from_torch(tm.state_dict())
    back = char_rnn_params_to_torch(params)
    assert list(back) == list(tm.state_dict())
    assert all(torch.equal(back[k], v) for k, v in tm.state_dict().items())
    x = np.random.default_rng(0).integers(0, 6, (3, 7))
    ours = CharRNN(6, 6, num_layers=2, cell="lstm").apply({"params": params}, x)
    with torch.no_grad():
        theirs = tm(torch.tensor(one_hot(x, 6))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_generate_greedy_continues_the_learned_sentence():
    lab = make_lab("longseq")
    run = run_lab(lab)
    prompt = "if you want"
    out = generate(lab.model, run.state.params, lab.vocab.encode(prompt), 20)
    assert lab.vocab.decode(out) == LONGSEQ[len(prompt) : len(prompt) + 20]
    a = generate(lab.model, run.state.params, lab.vocab.encode(prompt), 20, jax.random.key(3), 1.5)
    b = generate(lab.model, run.state.params, lab.vocab.encode(prompt), 20, jax.random.key(3), 1.5)
    np.testing.assert_array_equal(a, b)  # same key, same sample
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got -1.0"):
        generate(lab.model, run.state.params, lab.vocab.encode(prompt), 5, None, -1.0)
    # A temperature far below the logits' gaps samples the greedy continuation (the limit), even where the logits
    # divided by it overflow float32; one that is 0 in float32 is refused.
    for tiny in (1e-30, 1e-44):
        sampled = generate(lab.model, run.state.params, lab.vocab.encode(prompt), 20, jax.random.key(3), tiny)
        np.testing.assert_array_equal(sampled, out)
    with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or at least float32's smallest positive"):
        generate(lab.model, run.state.params, lab.vocab.encode(prompt), 5, None, 1e-300)


def test_char_rnn_rejects_bad_input():
    m = CharRNN(5, 4)
    with pytest.raises(ValueError, match=r"one-hot input must have 5 features \(vocab_size\), got shape \(1, 3, 4\)"):
        m.init(jax.random.key(0), jnp.ones((1, 3, 4)))
    with pytest.raises(ValueError, match=r"head=False .* hidden_size \(4\) must equal vocab_size \(5\)"):
        CharRNN(5, 4, head=False).init(jax.random.key(0), jnp.ones((1, 3), jnp.int32))


@pytest.mark.parametrize(
    "script, expect",
    [
        ("rnn_basics", "output (3, 5, 2)"),
        ("hihello", "reached the target 'ihello'"),
        ("charseq", "reached the target 'if you want you'"),
        (
            "longseq",
            "\ngreedy:             if you want| to build a ship, don't drum up people together to collect wood and "
            "don't assign\n",
        ),
    ],
)
def test_rnn_experiment_scripts(script, expect, capsys, no_compilation_cache, tmp_path):
    load_script(script).main([] if script == "rnn_basics" else ["--workdir", str(tmp_path)])
    assert expect in capsys.readouterr().out


def test_longseq_script_rejects_prompt_outside_vocabulary(capsys):
    with pytest.raises(SystemExit) as e:
        load_script("longseq").main(["--prompt", "xyz"])
    assert e.value.code == 2 and "--prompt: characters ['x', 'z']" in capsys.readouterr().err


def test_the_recipe_through_the_driver_trains_as_run_lab_bit_for_bit(tmp_path):
    """char.train_and_evaluate cuts the iterations into epochs, each one compiled scan of steps, and writes the
    driver's files; every iteration's loss and prediction and the final parameters are run_lab's, bit for bit."""
    lab = make_lab("charseq", "gru")
    expected = run_lab(lab, seed=3, iterations=20)
    result = char.train_and_evaluate(char.Config(lab="charseq", cell="gru", iterations=20, seed=3, epochs=4), tmp_path)
    np.testing.assert_array_equal(result.losses, expected.losses)
    assert result.predictions == expected.predictions and result.first_iteration == 0
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(expected.state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["epoch"] for r in result.records] == [1, 2, 3, 4]
    np.testing.assert_allclose(result.records[0]["train_loss"], expected.losses[:5].mean(), rtol=1e-6)
    assert result.params_path.is_file() and result.metrics_path.is_file()


def test_a_second_run_lab_with_another_seed_compiles_nothing():
    lab = make_lab("longseq")
    first = run_lab(lab, seed=0)
    before = COMPILES.count
    second = run_lab(lab, seed=1)
    third = run_lab(make_lab("longseq"), seed=2)  # the same lab made again
    assert COMPILES.count == before, f"{COMPILES.count - before} new compilations"
    assert len({first.losses[0], second.losses[0], third.losses[0]}) == 3  # other seeds really ran
    # and the counter does see a compilation when there is one: another number of iterations is another program
    run_lab(lab, seed=0, iterations=3)
    assert COMPILES.count > before


def test_learning_rate_is_a_value_that_changes_the_run():
    lab = make_lab("hihello")
    a = run_lab(lab, seed=0, iterations=3, learning_rate=0.1)
    b = run_lab(lab, seed=0, iterations=3, learning_rate=0.01)
    assert a.losses[0] == b.losses[0] and a.losses[2] != b.losses[2]
