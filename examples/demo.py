"""The README's main job (placeholder until training lands): corpus facts and sampler batches."""
import random

import lyricnn as d2l

corpus_indices, char_to_idx, idx_to_char, vocab_size = d2l.load_data_jay_lyrics()
print("characters:", len(corpus_indices), "vocabulary:", vocab_size)
print("first 10:", "".join(idx_to_char[i] for i in corpus_indices[:10]))
random.seed(0)
for X, Y in d2l.data_iter_random(list(range(50)), batch_size=3, num_steps=4):
    print("X", X.asnumpy().astype(int).tolist(), "Y", Y.asnumpy().astype(int).tolist())
