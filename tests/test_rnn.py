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
    (lambda: CharLM(CharLMConfig(cell="cnn")), r"config.cell: expected one of 'rnn', 'torch_rnn', .*'gru', 'torch_gru', got 'cnn'"),
    (lambda: sample(CharLM(CharLMConfig(vocab_size=5)), [], 3), r"prompt_ids: expected at least one id"),
    (lambda: sample(CharLM(CharLMConfig(vocab_size=5)), [1], 3, temperature=0), r"temperature: expected a positive"),
])
def test_rnn_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --- chapter 02: LSTM and GRU --------------------------------------------------------------------

from course_lib.rnn import GRU, LSTM  # noqa: E402


@pytest.mark.parametrize("cls, torch_cls", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
def test_gated_cells_match_torch_with_copied_weights(cls, torch_cls):
    torch.manual_seed(3)
    reference = torch_cls(5, 7, batch_first=True)
    ours = cls.from_torch(reference)
    x = torch.randn(3, 11, 5)
    out, state = ours(x)
    ref_out, ref_state = reference(x)
    torch.testing.assert_close(out, ref_out)
    if cls is LSTM:
        torch.testing.assert_close(state, (ref_state[0][0], ref_state[1][0]))
    else:
        torch.testing.assert_close(state, ref_state[0])
    assert out.shape == (3, 11, 7)


def test_lstm_and_gru_from_a_given_initial_state_match_torch():
    torch.manual_seed(4)
    lstm, gru = torch.nn.LSTM(4, 6, batch_first=True), torch.nn.GRU(4, 6, batch_first=True)
    x, h0, c0 = torch.randn(2, 9, 4), torch.randn(2, 6), torch.randn(2, 6)
    out, (h, c) = LSTM.from_torch(lstm)(x, (h0, c0))
    ref_out, (ref_h, ref_c) = lstm(x, (h0[None], c0[None]))
    torch.testing.assert_close((out, h, c), (ref_out, ref_h[0], ref_c[0]))
    torch.testing.assert_close(GRU.from_torch(gru)(x, h0)[0], gru(x, h0[None])[0])


def test_lstm_step_is_the_equation_in_torch_gate_order():
    torch.manual_seed(5)
    lstm = LSTM(3, 4)
    x_t, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    pre = x_t @ lstm.W_x + h @ lstm.W_h + lstm.b
    i, f, g, o = (pre[:, k * 4:(k + 1) * 4] for k in range(4))
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new, c_out = lstm.step(x_t, (h, c))
    torch.testing.assert_close(c_out, c_new)
    torch.testing.assert_close(h_new, torch.sigmoid(o) * torch.tanh(c_new))


def test_gru_step_keeps_the_state_when_the_update_gate_is_one():
    torch.manual_seed(6)
    gru = GRU(3, 4)
    with torch.no_grad():  # a huge z bias drives z to 1: h' = (1 - z) n + z h = h
        gru.b_x[4:8] = 50.0
    h = torch.randn(2, 4)
    torch.testing.assert_close(gru.step(torch.randn(2, 3), h), h)


@pytest.mark.parametrize("cls, torch_cls", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
def test_gated_cell_gradients_match_torch(cls, torch_cls):
    torch.manual_seed(7)
    reference = torch_cls(4, 6, batch_first=True)
    ours = cls.from_torch(reference)
    x = torch.randn(2, 8, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ours(x)[0].pow(2).sum().backward()
    reference(x_ref)[0].pow(2).sum().backward()
    torch.testing.assert_close(ours.W_h.grad, reference.weight_hh_l0.grad.T)
    torch.testing.assert_close(ours.W_x.grad, reference.weight_ih_l0.grad.T)
    torch.testing.assert_close(x.grad, x_ref.grad)
    if cls is LSTM:
        torch.testing.assert_close(ours.b.grad, reference.bias_ih_l0.grad)
    else:
        torch.testing.assert_close(ours.b_h.grad, reference.bias_hh_l0.grad)


def test_parameter_counts_gru_is_three_quarters_of_lstm():
    for C, d in [(2, 16), (10, 33)]:
        lstm = sum(p.numel() for p in torch.nn.LSTM(C, d).parameters())
        gru = sum(p.numel() for p in torch.nn.GRU(C, d).parameters())
        assert 4 * gru == 3 * lstm == 3 * 4 * (C * d + d * d + 2 * d)
        assert sum(p.numel() for p in LSTM(C, d).parameters()) == lstm - 4 * d  # one summed bias
        assert sum(p.numel() for p in GRU(C, d).parameters()) == gru


@pytest.mark.parametrize("cell", ["lstm", "torch_lstm", "gru", "torch_gru"])
def test_char_lm_with_gated_cells_continues_a_sequence(cell):
    torch.manual_seed(8)
    model = CharLM(CharLMConfig(vocab_size=11, d_embed=6, d_hidden=10, cell=cell))
    ids = torch.randint(0, 11, (2, 12))
    logits, _ = model(ids)
    first, state = model(ids[:, :5])
    second, _ = model(ids[:, 5:], state)  # carrying the state equals one pass over the whole sequence
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)
    out = sample(model, [1, 2], 6, generator=torch.Generator().manual_seed(0))
    assert len(out) == 8 and all(0 <= i < 11 for i in out)


def test_char_lm_loop_and_fused_gated_cells_agree():
    torch.manual_seed(9)
    for loop_cell, fused_cell, cls in (("lstm", "torch_lstm", LSTM), ("gru", "torch_gru", GRU)):
        fused = CharLM(CharLMConfig(vocab_size=9, d_embed=5, d_hidden=8, cell=fused_cell))
        loop = CharLM(CharLMConfig(vocab_size=9, d_embed=5, d_hidden=8, cell=loop_cell))
        loop.embed.load_state_dict(fused.embed.state_dict())
        loop.head.load_state_dict(fused.head.state_dict())
        loop.rnn = cls.from_torch(fused.rnn)
        ids = torch.randint(0, 9, (3, 7))
        torch.testing.assert_close(loop(ids)[0], fused(ids)[0])


@pytest.mark.parametrize("call, error, match", [
    (lambda: LSTM(0, 4), ValueError, r"input_size: expected a positive int, got 0"),
    (lambda: GRU(3, -1), ValueError, r"hidden_size: expected a positive int, got -1"),
    (lambda: LSTM(3, 4)(torch.randn(2, 5, 2)), ValueError, r"x: expected shape \(B, T, 3\), got \(2, 5, 2\)"),
    (lambda: GRU(3, 4)(torch.randn(5, 3)), ValueError, r"x: expected shape \(B, T, 3\), got \(5, 3\) with 2 dims"),
    (lambda: LSTM(3, 4)(torch.randn(2, 5, 3), torch.zeros(2, 4)), TypeError,
     r"state0: expected a pair \(h0, c0\), got Tensor"),
    (lambda: LSTM(3, 4)(torch.randn(2, 5, 3), (torch.zeros(2, 4), torch.zeros(3, 4))), ValueError,
     r"c0: expected shape \(2, 4\), got \(3, 4\)"),
    (lambda: LSTM(3, 4)(torch.randn(2, 5, 3), (torch.zeros(2, 5), torch.zeros(2, 4))), ValueError,
     r"h0: expected shape \(2, 4\), got \(2, 5\)"),
    (lambda: GRU(3, 4)(torch.randn(2, 5, 3), torch.zeros(2, 4, 1)), ValueError, r"h0: expected shape \(2, 4\)"),
    (lambda: LSTM.from_torch(torch.nn.GRU(3, 4, batch_first=True)), TypeError,
     r"module: expected a torch.nn.LSTM, got GRU"),
    (lambda: GRU.from_torch(torch.nn.LSTM(3, 4, batch_first=True)), TypeError,
     r"module: expected a torch.nn.GRU, got LSTM"),
    (lambda: LSTM.from_torch(torch.nn.LSTM(3, 4)), ValueError, r"module: expected a one-layer.*batch_first"),
    (lambda: GRU.from_torch(torch.nn.GRU(3, 4, num_layers=2, batch_first=True)), ValueError,
     r"module: expected a one-layer"),
    (lambda: LSTM.from_torch(torch.nn.LSTM(3, 4, batch_first=True, proj_size=2)), ValueError,
     r"no projection"),
    (lambda: GRU.from_torch(torch.nn.GRU(3, 4, batch_first=True, bias=False)), ValueError, r"with biases"),
])
def test_gated_cells_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
