"""N-gram language models (book 6.1), without MXNet."""
