"""Transformer layers and the encoder-decoder Transformer: gradients, masks, encodings, training."""
import numpy as np
import pytest

import fastnlp
from fastnlp import optim
from fastnlp.gradcheck import check_layer
from fastnlp.layers import (LayerNorm, MultiHeadAttention, NonFiniteError, PositionalEncoding,
                            PositionwiseFeedForward, ScaledDotProductAttention, TransformerDecoderBlock,
                            TransformerEncoderBlock, causal_mask, padding_mask, positional_encoding)
from fastnlp.models import Transformer, seq2seq_accuracy

rng = np.random.default_rng(0)
D = 8
PAD_IDS = np.array([[1, 2, 0, 0], [1, 1, 1, 0]])


def x_of(N=2, T=3):
    return rng.standard_normal((N, T, D))


def test_scaled_dot_product_attention_gradients():
    q, kv = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((2, 3, 5, 4))  # (N, heads, T, d)
    check_layer(ScaledDotProductAttention(), q, kv, rng.standard_normal((2, 3, 5, 6)))
    x = rng.standard_normal((2, 4, 4))
    check_layer(ScaledDotProductAttention(), x, x.copy(), x.copy(), causal_mask(4))


def test_multi_head_attention_and_blocks_gradients():
    x, memory = x_of(), x_of(T=4)
    mask = padding_mask(PAD_IDS, 0)
    check_layer(MultiHeadAttention.random(D, 2, 0, np.float64), x, memory)
    check_layer(MultiHeadAttention.random(D, 4, 1, np.float64), x, memory, mask)
    check_layer(TransformerEncoderBlock.random(D, 2, 16, 2, np.float64), memory, mask)
    check_layer(TransformerDecoderBlock.random(D, 2, 16, 3, np.float64), x, memory, causal_mask(3), mask)


def test_per_position_layers_gradients():
    x = x_of()
    check_layer(LayerNorm(rng.standard_normal(D), rng.standard_normal(D)), x)
    check_layer(PositionwiseFeedForward.random(D, 16, 0, np.float64), x)
    check_layer(PositionalEncoding(D, scale=np.sqrt(D)), x)


def test_layer_norm_normalises_the_last_axis():
    out = LayerNorm.ones(D, np.float64).forward(x_of() * 5 + 3)
    np.testing.assert_allclose(out.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1, rtol=1e-4)


def test_positional_encoding_is_the_papers_table():
    table = positional_encoding(50, 6, np.float64)
    t, i = 7, 1
    assert table[t, 2 * i] == pytest.approx(np.sin(t / 10000 ** (2 * i / 6)))
    assert table[t, 2 * i + 1] == pytest.approx(np.cos(t / 10000 ** (2 * i / 6)))
    assert positional_encoding(3, 5).shape == (3, 5)  # odd width
    layer = PositionalEncoding(6)
    out = layer.forward(np.zeros((1, 40, 6), np.float32))  # the table grows on demand
    np.testing.assert_allclose(out[0], table[:40], rtol=1e-6, atol=1e-7)


def test_causal_mask_hides_the_future():
    block = TransformerDecoderBlock.random(D, 2, 16, 0, np.float64)
    y, memory = x_of(T=5), x_of(T=4)
    out = block.forward(y, memory, causal_mask(5))
    changed = y.copy()
    changed[:, 3:] += 10.0
    out2 = block.forward(changed, memory, causal_mask(5))
    np.testing.assert_allclose(out2[:, :3], out[:, :3], rtol=1e-12)
    assert not np.allclose(out2[:, 3:], out[:, 3:])


def test_padding_mask_hides_padded_keys():
    attention = MultiHeadAttention.random(D, 2, 0, np.float64)
    x, memory = x_of(), x_of(T=4)
    mask = padding_mask(PAD_IDS, 0)
    assert mask.shape == (2, 1, 1, 4)
    out = attention.forward(x, memory, mask)
    assert np.all(attention.attention_weights[0, :, :, 2:] == 0)
    changed = memory.copy()
    changed[0, 2:] = 99.0
    changed[1, 3] = -99.0
    np.testing.assert_allclose(attention.forward(x, changed, mask), out, rtol=1e-12)


def test_a_fully_masked_query_attends_uniformly():
    layer = ScaledDotProductAttention()
    q = rng.standard_normal((1, 2, 4))
    out = layer.forward(q, q, q, np.zeros((2, 2), dtype=bool))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(layer.attention_weights, 0.5)


def test_bad_input_is_refused_clearly():
    attention = MultiHeadAttention.random(D, 2, 0)
    with pytest.raises(ValueError, match=r"x_kv must be \(N, T, 8\)"):
        attention.forward(np.ones((2, 3, D), np.float32), np.ones((2, 3, D + 1), np.float32))
    with pytest.raises(ValueError, match="batch 2 but x_kv has 3"):
        attention.forward(np.ones((2, 3, D), np.float32), np.ones((3, 3, D), np.float32))
    with pytest.raises(ValueError, match="positive divisor"):
        MultiHeadAttention.random(D, 3)
    with pytest.raises(TypeError, match="mask must be boolean"):
        attention.forward(np.ones((2, 3, D), np.float32), np.ones((2, 3, D), np.float32), np.ones((3, 3)))
    with pytest.raises(ValueError, match="does not broadcast"):
        attention.forward(np.ones((2, 3, D), np.float32), np.ones((2, 3, D), np.float32), causal_mask(4))
    with pytest.raises(ValueError, match="do not fit"):
        ScaledDotProductAttention().forward(np.ones((2, 3, 4)), np.ones((2, 3, 5)), np.ones((2, 3, 5)))
    with pytest.raises(NonFiniteError):
        LayerNorm.ones(D).forward(np.full((1, D), np.inf))
    with pytest.raises(RuntimeError, match="before forward"):
        LayerNorm.ones(D).backward(np.ones((1, D)))


def test_a_mask_may_not_make_the_output_larger():
    x = np.ones((1, 3, D), np.float32)
    attention = MultiHeadAttention.random(D, 2, 0)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 1, 3, 3\) does not broadcast to the scores "
                                         r"\(1, 2, 3, 3\)"):
        attention.forward(x, x, np.ones((2, 1, 3, 3), dtype=bool))  # would return a batch of 2
    with pytest.raises(ValueError, match=r"MultiHeadAttention.*\(1, 4, 3, 3\).*\(1, 2, 3, 3\)"):
        attention.forward(x, x, np.ones((1, 4, 3, 3), dtype=bool))  # more heads than the layer has
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3, 3\) does not broadcast to the scores \(1, 3, 3\)"):
        ScaledDotProductAttention().forward(x[..., :4], x[..., :4], x[..., :4], np.ones((2, 3, 3), dtype=bool))
    for mask in (causal_mask(3), np.ones((1, 1, 1, 3), dtype=bool), np.ones((1, 2, 3, 3), dtype=bool)):
        assert attention.forward(x, x, mask).shape == x.shape  # masks that fit still broadcast


def test_numpy_integers_are_sizes_but_bools_and_floats_are_not():
    i, V = np.int64, 7
    same = Transformer(V, d_model=i(4), n_heads=i(2), d_ff=i(8), n_layers=i(1), pad_id=i(0), seed=0)
    plain = Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, pad_id=0, seed=0)
    for a, b in zip(same.params, plain.params):
        np.testing.assert_array_equal(a, b)
    assert MultiHeadAttention.random(i(D), i(4)).n_heads == 4
    assert LayerNorm.ones(i(D)).params[0].shape == (D,)
    assert PositionwiseFeedForward.random(i(D), i(16)).params[0].shape == (D, 16)
    assert PositionalEncoding(i(D)).forward(np.zeros((1, 2, D))).shape == (1, 2, D)
    for bad in (2.0, True, np.float64(2)):
        with pytest.raises(TypeError, match="n_heads must be an integer"):
            Transformer(V, d_model=4, n_heads=bad, d_ff=8, n_layers=1)
        with pytest.raises(TypeError, match="n_heads must be an integer"):
            MultiHeadAttention.random(D, bad)
    with pytest.raises(ValueError, match="positive divisor of d_model = 4, got 3"):
        Transformer(V, d_model=4, n_heads=i(3), d_ff=8, n_layers=1)
    for make in (lambda: LayerNorm.ones(8.0), lambda: PositionalEncoding(True),
                 lambda: PositionwiseFeedForward.random(D, 16.0), lambda: MultiHeadAttention.random(8.0, 2)):
        with pytest.raises(TypeError, match="must be an integer"):
            make()
    with pytest.raises(TypeError, match="pad_id must be None or an integer"):
        Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, pad_id=True)
    with pytest.raises(ValueError, match="pad_id 7 is outside the vocabulary of 7"):
        Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, pad_id=7)


def test_transformer_gradients_and_generation():
    V = 7
    xs, ts = rng.integers(0, V, (3, 5)), rng.integers(0, V, (3, 4))
    model = Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, seed=0, dtype=np.float64)
    check_layer(model, xs, ts)
    padded = Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, pad_id=0, seed=0, dtype=np.float64)
    check_layer(padded, xs, ts)
    out = model.generate(xs, 1, 6)
    assert out.shape == (3, 6) and out.dtype == np.int64
    for i in range(3):  # batched decoding = one question at a time
        np.testing.assert_array_equal(model.generate(xs[i:i + 1], 1, 6), out[i:i + 1])
    with pytest.raises(IndexError, match="outside the vocabulary"):
        model.forward(xs + V, ts)
    with pytest.raises(ValueError, match="3 questions but 2 answers"):
        model.forward(xs, ts[:2])


def test_incremental_generation_equals_decoding_the_whole_prefix():
    model = Transformer(9, d_model=16, n_heads=4, d_ff=32, n_layers=2, pad_id=0, seed=3, dtype=np.float64)
    xs = rng.integers(0, 9, (6, 7))
    xs[:, 5:] = 0  # padding, masked out
    memory = model.encode(xs)
    ys = np.full((6, 1), 1)
    for _ in range(8):
        scores = model.decode(ys, memory)
        ys = np.concatenate([ys, scores[:, -1].argmax(axis=-1)[:, None]], axis=1)
    expected_weights = model.attention_weights  # (N, T_out, T_in) of the last full decode
    np.testing.assert_array_equal(model.generate(xs, 1, 8), ys[:, 1:])
    np.testing.assert_allclose(model.attention_weights, expected_weights, rtol=1e-10, atol=1e-12)


def test_transformer_learns_to_reverse_short_sequences():
    """Reversal needs every position to find another one: attention's job. A few seconds."""
    data = np.random.default_rng(1)
    x = data.integers(2, 8, (2048, 5))
    t = np.concatenate([np.ones((2048, 1), int), x[:, ::-1]], axis=1)  # 1 = start symbol
    model = Transformer(8, d_model=32, n_heads=4, d_ff=64, n_layers=1, seed=0)
    fastnlp.Trainer(model, optim.Adam(0.003), seed=0).fit(x[:1792], t[:1792], max_epoch=6, batch_size=64,
                                                           max_grad=5.0, progress=False)
    assert seq2seq_accuracy(model, x[1792:], t[1792:]) > 0.9


# ----- the attention's products are stacked gemm calls, transposes as flags ---------------------------

@pytest.fixture
def gemm_kernel_calls(monkeypatch):
    """(a shape, b shape, out shape, trans_a, trans_b, accumulate) of every product gemm runs."""
    from fastnlp.kernels import registry

    calls, lookup = [], registry.kernel

    def counting_kernel(op, like=None, variant=None):
        function = lookup(op, like, variant)
        if op != "gemm":
            return function

        def counted(a, b, out, trans_a, trans_b, accumulate):
            calls.append((a.shape, b.shape, out.shape, trans_a, trans_b, accumulate))
            return function(a, b, out, trans_a, trans_b, accumulate)

        return counted

    monkeypatch.setattr(registry, "kernel", counting_kernel)
    return calls


def test_attention_products_are_one_batched_gemm_each_with_transposes_as_flags(gemm_kernel_calls):
    N, heads, T_q, T_k, d = 2, 3, 4, 5, 6
    q, k, v = (rng.standard_normal((N, heads, T, d)) for T in (T_q, T_k, T_k))
    layer = ScaledDotProductAttention()
    out = layer.forward(q, k, v)
    B = N * heads
    assert gemm_kernel_calls == [((B, T_q, d), (B, T_k, d), (B, T_q, T_k), False, True, False),  # q k^T
                                 ((B, T_q, T_k), (B, T_k, d), (B, T_q, d), False, False, False)]  # a v
    del gemm_kernel_calls[:]
    layer.backward(np.ones_like(out))
    assert gemm_kernel_calls == [((B, T_q, T_k), (B, T_q, d), (B, T_k, d), True, False, False),  # dv = a^T dout
                                 ((B, T_q, d), (B, T_k, d), (B, T_q, T_k), False, True, False),  # da = dout v^T
                                 ((B, T_q, T_k), (B, T_k, d), (B, T_q, d), False, False, False),  # dq = ds k
                                 ((B, T_q, T_k), (B, T_q, d), (B, T_k, d), True, False, False)]  # dk = ds^T q


def test_multi_head_projections_are_one_product_over_all_positions(gemm_kernel_calls):
    layer = MultiHeadAttention.random(D, 2, rng=0, dtype=np.float64)
    x_q, x_kv = x_of(N=2, T=3), x_of(N=2, T=4)
    layer.forward(x_q, x_kv)
    two_d = [call for call in gemm_kernel_calls if len(call[0]) == 2]
    assert [call[:3] for call in two_d] == [((6, D), (D, D), (6, D)), ((8, D), (D, D), (8, D)),
                                            ((8, D), (D, D), (8, D)), ((6, D), (D, D), (6, D))]
    del gemm_kernel_calls[:]
    dx_q, dx_kv = layer.backward(np.ones((2, 3, D)))
    # dx_kv = dk Wk^T, then + dv Wv^T added in place (accumulate), no temporary
    assert gemm_kernel_calls[-3][2:] == ((8, D), False, True, False)
    assert gemm_kernel_calls[-2][2:] == ((8, D), False, True, True)


def test_incremental_decoding_multiplies_through_gemm_and_matches_forward(gemm_kernel_calls):
    block = TransformerDecoderBlock.random(D, 2, 16, rng=1, dtype=np.float64)
    y, memory = x_of(N=2, T=3), x_of(N=2, T=4)
    full = block.forward(y, memory, causal_mask(3))
    cache, memory_kv = {}, block.cross_attention.keys_values(memory)
    steps = [block.step(y[:, t:t + 1], cache, memory_kv) for t in range(3)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
    assert len(gemm_kernel_calls) > 0
