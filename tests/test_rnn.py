"""course_lib.rnn: the loop RNN equals torch.nn.RNN, and the char LM samples."""
import pytest
import torch

from course_lib.rnn import RNN, CharLM, CharLMConfig, sample


def test_rnn_matches_torch_with_copied_weights():
    torch.manual_seed(0)
    reference = torch.nn.RNN(5, 7, batch_first=True)
    ours = RNN.from_torch(reference)
    x, h0 = torch.randn(3, 11, 5), torch.randn(3, 7)
    out, h = ours(x, h0)
    ref_out, ref_h = reference(x, h0[None])
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h[0])


def test_rnn_gradients_match_torch():
    torch.manual_seed(1)
    reference = torch.nn.RNN(4, 6, batch_first=True)
    ours = RNN.from_torch(reference)
    x = torch.randn(2, 9, 4)
    ours(x)[0].pow(2).sum().backward()
    reference(x)[0].pow(2).sum().backward()
    torch.testing.assert_close(ours.W_h.grad, reference.weight_hh_l0.grad.T)
    torch.testing.assert_close(ours.W_x.grad, reference.weight_ih_l0.grad.T)


def test_char_lm_cells_agree_and_sample_is_seeded():
    torch.manual_seed(2)
    config = CharLMConfig(vocab_size=12, d_embed=8, d_hidden=16, cell="torch_rnn")
    fused = CharLM(config)
    loop = CharLM(CharLMConfig(vocab_size=12, d_embed=8, d_hidden=16, cell="rnn"))
    loop.embed.load_state_dict(fused.embed.state_dict())
    loop.head.load_state_dict(fused.head.state_dict())
    loop.rnn = RNN.from_torch(fused.rnn)
    ids = torch.randint(0, 12, (2, 10))
    torch.testing.assert_close(loop(ids)[0], fused(ids)[0])
    first = sample(loop, [1, 2], 20, temperature=0.8, generator=torch.Generator().manual_seed(0))
    second = sample(loop, [1, 2], 20, temperature=0.8, generator=torch.Generator().manual_seed(0))
    assert first == second and len(first) == 22 and all(0 <= i < 12 for i in first)


@pytest.mark.parametrize("call, match", [
    (lambda: RNN(0, 4), r"input_size: expected a positive int, got 0"),
    (lambda: RNN(3, 4)(torch.randn(2, 5, 2)), r"x: expected shape \(B, T, 3\), got \(2, 5, 2\)"),
    (lambda: RNN(3, 4)(torch.randn(5, 3)), r"x: expected shape \(B, T, 3\), got \(5, 3\) with 2 dims"),
    (lambda: RNN(3, 4)(torch.randn(2, 5, 3), torch.zeros(3, 4)), r"h0: expected shape \(2, 4\), got \(3, 4\)"),
    (lambda: RNN.from_torch(torch.nn.LSTM(3, 4)), r"module: expected a torch.nn.RNN, got LSTM"),
    (lambda: RNN.from_torch(torch.nn.RNN(3, 4)), r"module: expected a one-layer.*batch_first"),
    (lambda: CharLM(CharLMConfig(cell="cnn")), r"config.cell: expected 'rnn' or 'torch_rnn', got 'cnn'"),
    (lambda: sample(CharLM(CharLMConfig(vocab_size=5)), [], 3), r"prompt_ids: expected at least one id"),
    (lambda: sample(CharLM(CharLMConfig(vocab_size=5)), [1], 3, temperature=0), r"temperature: expected a positive"),
])
def test_rnn_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
