"""The ``init`` argument of every model: the book's initialisation exactly as before, the scaled
one with its documented statistics, refused values, and the bidirectional attention model learning
with its default."""
import numpy as np
import pytest

import fastnlp
from fastnlp import optim
from fastnlp.models import (CBOW, AttentionSeq2seq, BetterRnnlm, PeekySeq2seq, Rnnlm, Seq2seq, SimpleCBOW,
                            SimpleRnnlm, SimpleSkipGram, SkipGram, Transformer, TwoLayerNet, seq2seq_accuracy)

CORPUS = np.arange(30) % 13

BUILDERS = {
    "SimpleRnnlm": lambda **kw: SimpleRnnlm(13, 5, 6, seed=1, **kw),
    "Rnnlm": lambda **kw: Rnnlm(13, 5, 6, seed=2, **kw),
    "BetterRnnlm": lambda **kw: BetterRnnlm(13, 6, 6, seed=3, **kw),
    "Seq2seq": lambda **kw: Seq2seq(13, 5, 6, seed=4, **kw),
    "PeekySeq2seq": lambda **kw: PeekySeq2seq(13, 5, 6, seed=5, **kw),
    "AttentionSeq2seq": lambda **kw: AttentionSeq2seq(13, 5, 6, seed=6, **kw),
    "AttentionSeq2seq_bi": lambda **kw: AttentionSeq2seq(13, 5, 6, seed=7, bidirectional=True, **kw),
    "Transformer": lambda **kw: Transformer(13, d_model=8, n_heads=2, d_ff=12, n_layers=1, seed=8, **kw),
    "TwoLayerNet": lambda **kw: TwoLayerNet(4, 5, 3, seed=9, **kw),
    "SimpleCBOW": lambda **kw: SimpleCBOW(13, 5, seed=10, **kw),
    "SimpleSkipGram": lambda **kw: SimpleSkipGram(13, 5, seed=11, **kw),
    "CBOW": lambda **kw: CBOW(13, 5, 1, CORPUS, seed=12, **kw),
    "SkipGram": lambda **kw: SkipGram(13, 5, 1, CORPUS, seed=13, **kw),
    "Seq2seq_f64": lambda **kw: Seq2seq(13, 5, 6, seed=14, dtype=np.float64, **kw),
}
# What init=None means for each model: measured in bench/compare_init.py.
SCALED_BY_DEFAULT = ["PeekySeq2seq", "AttentionSeq2seq", "AttentionSeq2seq_bi", "Transformer"]
DEFAULTS = {name: "scaled" if name in SCALED_BY_DEFAULT else "book" for name in BUILDERS}
# The initialisation the code had before ``init`` existed: the book's everywhere, the scaled one
# for the Transformer (which the book does not have).
BEFORE = {name: "scaled" if name == "Transformer" else "book" for name in BUILDERS}

# (shape, sum, first value) of every parameter, in order, as the code before ``init`` existed made
# them with the seeds of BUILDERS (computed with that code): readers reproducing the book get
# exactly the same starting point.
FINGERPRINTS = {
    'SimpleRnnlm': [
        ((13, 5), -0.04495028058590833, 0.003455841913819313),
        ((5, 6), 0.2606632787210401, -0.20873677730560303),
        ((6, 6), -2.020461767911911, -0.9189074039459229),
        ((6,), 0.0, 0.0),
        ((6, 13), -1.5428609251976013, 0.21718893945217133),
        ((13,), 0.0, 0.0),
    ],
    'Rnnlm': [
        ((13, 5), 0.05585473368410021, 0.0018905338365584612),
        ((5, 24), -4.084059479646385, -0.47688156366348267),
        ((6, 24), -4.508492944762111, 0.6226615309715271),
        ((24,), 0.0, 0.0),
        ((6, 13), 1.352279496844858, 0.2793404459953308),
        ((13,), 0.0, 0.0),
    ],
    'BetterRnnlm': [
        ((13, 6), -0.05517013913777191, 0.02040919102728367),
        ((6, 24), 4.609126605093479, -0.15197065472602844),
        ((6, 24), 1.4331183321774006, -0.489104300737381),
        ((24,), 0.0, 0.0),
        ((6, 24), 9.109123267000541, 0.6272076964378357),
        ((6, 24), 3.297676220536232, 0.06615224480628967),
        ((24,), 0.0, 0.0),
        ((6, 13), -0.05517013913777191, 0.02040919102728367),
        ((13,), 0.0, 0.0),
    ],
    'Seq2seq': [
        ((13, 5), -0.024187138911656803, -0.006517911329865456),
        ((5, 24), 4.444571153726429, 0.1415335088968277),
        ((6, 24), 7.918079203693196, 0.6358010172843933),
        ((24,), 0.0, 0.0),
        ((13, 5), -0.12106649263296276, 0.0007942344527691603),
        ((5, 24), -5.144053120631725, -0.2349344938993454),
        ((6, 24), 0.06861469754949212, -0.13083922863006592),
        ((24,), 0.0, 0.0),
        ((6, 13), 0.4287245012819767, 0.6405430436134338),
        ((13,), 0.0, 0.0),
    ],
    'PeekySeq2seq': [
        ((13, 5), -0.10531010136764962, -0.008019314147531986),
        ((5, 24), -2.8390820079948753, -0.17734289169311523),
        ((6, 24), 1.2127709657052037, 1.099230170249939),
        ((24,), 0.0, 0.0),
        ((13, 5), -0.06298085927846842, -0.007338840048760176),
        ((11, 24), 4.951796150766313, 0.4789242744445801),
        ((6, 24), -1.7016342552378774, 0.3760921061038971),
        ((24,), 0.0, 0.0),
        ((12, 13), 2.1680687157204375, 0.2241765856742859),
        ((13,), 0.0, 0.0),
    ],
    'AttentionSeq2seq': [
        ((13, 5), 0.09647661773487926, 0.01053115725517273),
        ((5, 24), -1.0538677356671542, 0.3327604830265045),
        ((6, 24), -0.8480851735803299, 0.7494614720344543),
        ((24,), 0.0, 0.0),
        ((13, 5), -0.026304314756998792, -0.002703447826206684),
        ((5, 24), -1.4031096731778234, -0.386194109916687),
        ((6, 24), -3.9842433447483927, -0.1845558136701584),
        ((24,), 0.0, 0.0),
        ((12, 13), 2.850885078776628, 0.2438352108001709),
        ((13,), 0.0, 0.0),
    ],
    'AttentionSeq2seq_bi': [
        ((13, 5), -0.14460216094539646, 1.2301533388381358e-05),
        ((5, 12), -3.0680816709063947, -0.08774150907993317),
        ((3, 12), -3.9146384093910456, 0.20948565006256104),
        ((12,), 0.0, 0.0),
        ((5, 12), -1.0500239985994995, 0.15085692703723907),
        ((3, 12), -7.126292396336794, -0.5610162615776062),
        ((12,), 0.0, 0.0),
        ((13, 5), 0.028330296659987653, 0.0015762662515044212),
        ((5, 24), -3.5774054402136244, 0.681749165058136),
        ((6, 24), -14.091218502726406, 0.34841445088386536),
        ((24,), 0.0, 0.0),
        ((12, 13), 0.48933652648702264, -0.20047277212142944),
        ((13,), 0.0, 0.0),
    ],
    'Transformer': [
        ((13, 8), -0.7206667724458384, -0.6145699620246887),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 8), -1.0427790749818087, 0.17653290927410126),
        ((8,), 0.0, 0.0),
        ((8, 8), -4.573281575459987, -0.19829782843589783),
        ((8,), 0.0, 0.0),
        ((8, 8), 3.4961873972788453, 0.3289022445678711),
        ((8,), 0.0, 0.0),
        ((8, 8), 3.148914670571685, -0.568169355392456),
        ((8,), 0.0, 0.0),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 12), 7.2600910272449255, 0.5606851577758789),
        ((12,), 0.0, 0.0),
        ((12, 8), -3.2135870076017454, 0.1929715871810913),
        ((8,), 0.0, 0.0),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((13, 8), 0.7874448895454407, 0.050910644233226776),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 8), -0.7763006649911404, -0.3553091287612915),
        ((8,), 0.0, 0.0),
        ((8, 8), 0.6808210080489516, 0.1426641345024109),
        ((8,), 0.0, 0.0),
        ((8, 8), -3.477504718815908, -0.09913258999586105),
        ((8,), 0.0, 0.0),
        ((8, 8), -4.287788267247379, -0.25370779633522034),
        ((8,), 0.0, 0.0),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 8), -2.2188193276524544, -0.1929827332496643),
        ((8,), 0.0, 0.0),
        ((8, 8), -1.621860507875681, -0.009290620684623718),
        ((8,), 0.0, 0.0),
        ((8, 8), -4.401444656774402, -0.05095892772078514),
        ((8,), 0.0, 0.0),
        ((8, 8), 2.694164020475, 0.43601179122924805),
        ((8,), 0.0, 0.0),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 12), -9.056700895889662, -0.3985792100429535),
        ((12,), 0.0, 0.0),
        ((12, 8), 0.4916729340329766, 0.26355692744255066),
        ((8,), 0.0, 0.0),
        ((8,), 8.0, 1.0),
        ((8,), 0.0, 0.0),
        ((8, 13), -3.597221298099612, 0.5275861024856567),
        ((13,), 0.0, 0.0),
    ],
    'TwoLayerNet': [
        ((4, 5), 0.03310538828372955, -0.008028369396924973),
        ((5,), 0.0, 0.0),
        ((5, 3), -0.04748776578344405, -0.003983612637966871),
        ((3,), 0.0, 0.0),
    ],
    'SimpleCBOW': [
        ((13, 5), -0.16145441337721422, -0.011033384129405022),
        ((13, 5), -0.16145441337721422, -0.011033384129405022),
        ((5, 13), -0.03119486940704519, -0.020803790539503098),
    ],
    'SimpleSkipGram': [
        ((13, 5), -0.031083621812285855, 0.00034192766179330647),
        ((5, 13), 0.08858726912876591, -0.008762616664171219),
    ],
    'CBOW': [
        ((13, 5), 0.06993440937912965, -6.826780008850619e-05),
        ((13, 5), -0.012281550065381452, -0.008820079267024994),
    ],
    'SkipGram': [
        ((13, 5), 0.14611096784938127, 0.018267566338181496),
        ((13, 5), -0.04428324552827689, 0.011620957404375076),
    ],
    'Seq2seq_f64': [
        ((13, 5), 0.026842428944609767, 0.006955197700381686),
        ((5, 24), -2.521002345165262, 0.047178169042931144),
        ((6, 24), 9.041004045767185, -0.3925982462668626),
        ((24,), 0.0, 0.0),
        ((13, 5), 0.1373335430380387, 0.00918293354987768),
        ((5, 24), -0.8363129442592472, 0.04429608282972477),
        ((6, 24), -10.820275157320648, -0.057329419455847),
        ((24,), 0.0, 0.0),
        ((6, 13), 1.3911446912013932, -0.027789814582950566),
        ((13,), 0.0, 0.0),
    ],
}


def fingerprint(model):
    return [(tuple(np.shape(p)), float(np.asarray(p, dtype=np.float64).sum()), float(np.asarray(p).reshape(-1)[0]))
            for p in model.params]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_initialisation_of_before_is_reproduced_value_for_value(name):
    for init in (BEFORE[name], None) if DEFAULTS[name] == BEFORE[name] else (BEFORE[name],):
        model = BUILDERS[name](init=init)
        got, want = fingerprint(model), FINGERPRINTS[name]
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose([g[1:] for g in got], [w[1:] for w in want], rtol=1e-9, atol=1e-12)
        assert model.init == BEFORE[name]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_model_takes_both_inits_and_none_is_its_default(name):
    book, scaled, default = (BUILDERS[name](init=init) for init in ("book", "scaled", None))
    assert (book.init, scaled.init, default.init) == ("book", "scaled", DEFAULTS[name])
    assert default.settings["init"] is None and scaled.settings["init"] == "scaled"
    same = book if DEFAULTS[name] == "book" else scaled
    for p, q in zip(default.params, same.params):
        np.testing.assert_array_equal(p, q)
    assert [np.shape(p) for p in book.params] == [np.shape(p) for p in scaled.params]
    assert any(not np.array_equal(p, q) for p, q in zip(book.params, scaled.params))


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("bad", ["Book", "pytorch", "", 1, True, 0.01, ("book",)])
def test_an_unknown_init_is_refused_naming_the_allowed_values(name, bad):
    with pytest.raises(ValueError, match="init must be one of 'book', 'scaled' or None"):
        BUILDERS[name](init=bad)


def test_the_building_blocks_take_init_too():
    from fastnlp.models import AttentionDecoder, AttentionEncoder, Decoder, Encoder, PeekyDecoder

    for block in (Encoder, Decoder, PeekyDecoder, AttentionEncoder, AttentionDecoder):
        book = block(13, 5, 6, rng=0)
        np.testing.assert_array_equal(book.params[0], block(13, 5, 6, rng=0, init="book").params[0])
        np.testing.assert_allclose(block(13, 5, 6, rng=0, init="scaled").params[0] / 100, book.params[0], rtol=1e-6)
        with pytest.raises(ValueError, match="init must be one of"):
            block(13, 5, 6, rng=0, init="glorot")


@pytest.mark.parametrize("cls, kw", [(Seq2seq, {}), (PeekySeq2seq, {}), (AttentionSeq2seq, {}),
                                     (AttentionSeq2seq, {"bidirectional": True})])
def test_scaled_seq2seq_has_unit_embeddings_and_the_books_other_weights(cls, kw):
    V, D, H = 60, 50, 40
    book = cls(V, D, H, seed=0, init="book", **kw)
    scaled = cls(V, D, H, seed=0, init="scaled", **kw)
    embeddings = [scaled.encoder.embed.params[0], scaled.decoder.embed.params[0]]
    for W in embeddings:
        assert W.shape == (V, D) and abs(W.mean()) < 0.05 and abs(W.std() - 1) < 0.05
    for W in (book.encoder.embed.params[0], book.decoder.embed.params[0]):
        assert abs(W.std() - 0.01) < 0.0005
    for p, q in zip(book.params, scaled.params):
        if any(q is W for W in embeddings):
            np.testing.assert_allclose(q / 100, p, rtol=1e-6)  # the same draws, 100 times larger
        else:
            np.testing.assert_array_equal(p, q)
    Wx = scaled.encoder.lstm.params[0]
    assert abs(Wx.std() * np.sqrt(D) - 1) < 0.05  # LSTM input weights N(0, 1/wordvec_size)
    assert not scaled.params[-1].any()  # the Affine's bias


def test_scaled_statistics_of_the_other_models():
    V, D, H = 400, 50, 40
    for model in (SimpleRnnlm(V, D, H, seed=0, init="scaled"), Rnnlm(V, D, H, seed=0, init="scaled")):
        embed, Wx, Wh, b = model.params[:4]
        assert abs(embed.std() - 1) < 0.02 and abs(Wx.std() * np.sqrt(D) - 1) < 0.03
        assert abs(Wh.std() * np.sqrt(H) - 1) < 0.03 and not b.any()
    better = BetterRnnlm(V, H, H, seed=0, init="scaled")
    assert abs(better.params[0].std() * np.sqrt(H) - 1) < 0.02  # the tied table: a dense layer's scale
    assert better.params[-2] is not None and np.shares_memory(better.params[0], better.params[-2])
    net = TwoLayerNet(200, 100, 50, seed=0, init="scaled")
    assert abs(net.params[0].std() * np.sqrt(200) - 1) < 0.02 and abs(net.params[2].std() * np.sqrt(100) - 1) < 0.03
    assert abs(TwoLayerNet(200, 100, 50, seed=0).params[0].std() - 0.01) < 0.0002
    corpus = np.arange(1000) % V
    for model in (SimpleCBOW(V, H, seed=0, init="scaled"), SimpleSkipGram(V, H, seed=0, init="scaled"),
                  CBOW(V, H, 2, corpus, seed=0, init="scaled"), SkipGram(V, H, 2, corpus, seed=0, init="scaled")):
        W_in, W_out = model.word_vecs, model.params[-1]
        assert abs(W_in.std() - 1) < 0.02 and abs(W_out.std() * np.sqrt(H) - 1) < 0.02
    scaled = Transformer(V, d_model=32, n_heads=4, d_ff=64, n_layers=1, seed=0)
    book = Transformer(V, d_model=32, n_heads=4, d_ff=64, n_layers=1, seed=0, init="book")
    assert abs(scaled.src_embed.params[0].std() * np.sqrt(32) - 1) < 0.02
    assert abs(book.src_embed.params[0].std() - 0.01) < 0.0002
    assert abs(book.tgt_embed.params[0].std() - 0.01) < 0.0002
    for p, q in zip(book.params, scaled.params):
        if p is not book.src_embed.params[0] and p is not book.tgt_embed.params[0]:
            np.testing.assert_array_equal(p, q)


def test_a_saved_model_keeps_its_init(tmp_path):
    model = AttentionSeq2seq(13, 5, 6, seed=0, init="book", bidirectional=True)
    fastnlp.save(tmp_path / "m.npz", model)
    loaded = fastnlp.load(tmp_path / "m.npz")
    assert loaded.init == "book" and loaded.settings["init"] == "book"
    for p, q in zip(model.params, loaded.params):
        np.testing.assert_array_equal(p, q)


def test_bidirectional_attention_learns_the_date_task_with_its_default_init(data_dir):
    """One epoch on 8000 dates takes the default (scaled) initialisation past the plateau; the
    book's is still on it there (0% of 500, measured; bench/compare_init.py has the full task)."""
    (x, t), (x_test, t_test), char_to_id, _ = fastnlp.datasets.load_sequence("date", data_dir, reverse=True)
    model = AttentionSeq2seq(len(char_to_id), 16, 64, seed=0, bidirectional=True)
    assert model.init == "scaled"
    trainer = fastnlp.Trainer(model, optim.Adam(lr=0.005), seed=0)
    trainer.fit(x[:8000], t[:8000], max_epoch=1, batch_size=32, max_grad=5.0, progress=False, eval_interval=None)
    accuracy = seq2seq_accuracy(model, x_test[:500], t_test[:500])
    assert accuracy > 0.5, accuracy  # 0.89 when measured (exact match of the 10-character answer; chance ~0)
