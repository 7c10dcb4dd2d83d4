"""PyTorch versions of the book's models, shared by the comparison scripts (no side effects on import:
each script sets its own thread counts)."""
from __future__ import annotations


def attention_seq2seq(torch, V, wordvec_size, hidden_size):
    """The date AttentionSeq2seq in PyTorch: embeddings, nn.LSTM encoder and decoder (cuDNN on a GPU),
    dot-product attention and nn.Linear over [context, h], the decoder starting from the encoder's
    last hidden state, as fastnlp.models.AttentionSeq2seq."""
    nn = torch.nn
    D, H = wordvec_size, hidden_size

    class AttentionSeq2seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_embed, self.dec_embed = nn.Embedding(V, D), nn.Embedding(V, D)
            self.encoder = nn.LSTM(D, H, batch_first=True)
            self.decoder = nn.LSTM(D, H, batch_first=True)
            self.affine = nn.Linear(2 * H, V)

        def decode(self, ys, enc_hs, state):
            dec_hs, state = self.decoder(self.dec_embed(ys), state)
            a = torch.softmax(torch.bmm(dec_hs, enc_hs.transpose(1, 2)), dim=-1)  # the same dot-product attention
            return self.affine(torch.cat((torch.bmm(a, enc_hs), dec_hs), dim=2)), state

        def forward(self, xs, ts):
            enc_hs, _ = self.encoder(self.enc_embed(xs))
            h0 = enc_hs[:, -1:].transpose(0, 1).contiguous()
            score, _ = self.decode(ts[:, :-1], enc_hs, (h0, torch.zeros_like(h0)))
            return nn.functional.cross_entropy(score.reshape(-1, V), ts[:, 1:].reshape(-1))

        @torch.no_grad()
        def generate(self, xs, start, length):
            enc_hs, _ = self.encoder(self.enc_embed(xs))
            h0 = enc_hs[:, -1:].transpose(0, 1).contiguous()
            state, ids, out = (h0, torch.zeros_like(h0)), start, []
            for _ in range(length):
                score, state = self.decode(ids, enc_hs, state)
                ids = score.argmax(dim=-1)
                out.append(ids)
            return torch.cat(out, dim=1)

    return AttentionSeq2seq()
