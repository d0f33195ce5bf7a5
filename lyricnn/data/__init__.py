"""Text in, indices out: corpora, vocabularies, samplers and streams, tokenisers, the data hub.
No module here imports MXNet at load time but ``sampling``."""
